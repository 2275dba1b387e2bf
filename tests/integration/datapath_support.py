"""A local cluster whose NetworkPolicies are enforced, for tests that send real packets.

:class:`DatapathCluster` is a :class:`~tests.integration.cluster.LocalCluster` (control plane,
one real node, kube-proxy, pods on the CNI bridge, all in a network namespace of its own) plus
three things a NetworkPolicy test needs:

- a policy engine beside the kubelet and kube-proxy: kube-router's firewall controller
  (``make netpol``; firewall only, no routing, no service proxy), which turns NetworkPolicies
  into iptables rules and ipsets inside the cluster's namespace. Tests only: it is never in
  mamori's image or chart (docs/operator.md, "Datapath tests", says why this one);
- CoreDNS as ``kube-dns``: a pod in kube-system labelled ``k8s-app=kube-dns`` behind the Service
  ``kube-dns`` (10.0.0.10), the peer mamori's DNS allowance names. It runs the CoreDNS that
  ``make coredns`` built, mounted from the host (no image to build), and serves its health
  endpoint on :data:`COREDNS_HEALTH_PORT`, a port of kube-system that DNS does not open;
- a stand-in for the EC2 instance-metadata endpoint: a network namespace of the test's own,
  joined to the cluster's by a veth pair, answering HTTP on 169.254.169.254 and on a neighbour
  address in the same /24 (so an allowed CIDR that contains both can show one open, one closed).

Everything goes with the namespaces when the cluster stops: kube-router's chains and ipsets live
in the cluster's namespace, the metadata server and its addresses in its own.

Packets are sent from inside a pod's network namespace (its first container's): a socket made
there by the test (HTTP), or the host's busybox under ``nsenter --net`` (DNS), the same binary
the pods run. Either way the packet leaves through the pod's veth with the pod's address, as the
pod's own process would send it, and the engine cannot tell the difference.
"""

from __future__ import annotations

import ctypes
import functools
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mamori_dev.netns import CLONE_NEWNET, NetworkNamespace
from tests.helpers import wait_for
from tests.integration.cluster import (
    COREDNS,
    COREDNS_USER,
    SERVICE_RANGE,
    LocalCluster,
)
from tests.integration.node_images import BUSYBOX_IMAGE
from tests.integration.node_support import (
    StartedOnEnter,
    _stop,
    container_pid,
    restricted_pod_spec,
)

REPOSITORY = Path(__file__).resolve().parents[2]
NETPOL_BIN = Path(os.environ.get("MAMORI_NETPOL_BIN", REPOSITORY / ".cache" / "netpol" / "bin"))
KUBE_ROUTER = NETPOL_BIN / "kube-router"
KUBE_DNS_IP = str(ipaddress.ip_network(SERVICE_RANGE)[10])
KUBE_DNS_NAME = "kube-dns.kube-system.svc.cluster.local"
COREDNS_HEALTH_PORT = 8080
HTTP_PORT = 8080
METADATA_IP = "169.254.169.254"
METADATA_NEIGHBOUR_IP = "169.254.169.253"  # same /24, not the endpoint: allowed CIDRs open it
METADATA_PORT = 80
# The veth pair between the cluster's namespace and the metadata one (link-local, /30).
TRANSFER_CLUSTER, TRANSFER_METADATA = "169.254.100.1", "169.254.100.2"
PROBE_TIMEOUT = 2.0  # seconds; a local bridge answers in well under a millisecond
READY_TIMEOUT = 120.0
BUSYBOX = "/bin/busybox"


class DatapathError(RuntimeError):
    """The cluster's datapath pieces did not come up; the message says which and why."""


@dataclass(frozen=True, kw_only=True)
class Pod:
    """A running pod: where it lives and how to send packets from it."""

    namespace: str
    name: str
    ip: str
    pid: int  # its first container's host pid: the way into its network namespace


class DatapathCluster(StartedOnEnter):
    """LocalCluster + kube-router's firewall + CoreDNS as kube-dns + a metadata stand-in."""

    def __init__(self) -> None:
        self.cluster = LocalCluster()
        suffix = self.cluster.identity.suffix
        self.metadata_namespace = NetworkNamespace(f"mamori-md-{suffix}")
        self._veth = (f"md-{suffix}", f"mdp-{suffix}")  # cluster end, metadata end
        self._metadata_root = Path()
        self._metadata_server: subprocess.Popen[bytes] | None = None
        self.kube_dns_pod: Pod | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if not KUBE_ROUTER.is_file():
            raise DatapathError(f"{KUBE_ROUTER} is missing: run `make netpol`")
        self.cluster.start()
        namespace = self.cluster.namespace
        # Bridged pod-to-pod packets must traverse iptables for the engine to see them.
        for family in ("iptables", "ip6tables"):
            subprocess.run(
                namespace.run_argv(["sysctl", "-qw", f"net.bridge.bridge-nf-call-{family}=1"]),
                check=True,
            )
        self.cluster.node.start_process("kube-router", self._kube_router_argv())
        self._start_kube_dns()
        self._start_metadata_stand_in()
        self._wait(self._firewall_programmed, what="kube-router's chains")

    def stop(self) -> None:
        """Stop the metadata stand-in and remove its namespace, then the cluster; idempotent."""
        server, self._metadata_server = self._metadata_server, None
        try:
            if server is not None:
                _stop(server)
            self.metadata_namespace.delete()
            if self._metadata_root != Path():
                shutil.rmtree(self._metadata_root, ignore_errors=True)
                self._metadata_root = Path()
        finally:
            self.cluster.stop()

    def log_tails(self) -> str:
        return self.cluster.log_tails()

    # -- pods and packets -----------------------------------------------------------------------

    def run_server(self, namespace: str, name: str, labels: Mapping[str, str] | None = None) -> Pod:
        """A restricted busybox pod serving its own name over HTTP on :data:`HTTP_PORT`."""
        script = (
            f"mkdir -p /tmp/www && echo {name} > /tmp/www/index.html && "
            f"exec busybox httpd -f -p {HTTP_PORT} -h /tmp/www"
        )
        spec = restricted_pod_spec(["/bin/sh", "-c", script])
        spec["nodeName"] = self.cluster.identity.name
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
            "spec": spec,
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))
        return self.running_pod(namespace, name)

    def running_pod(self, namespace: str, name: str) -> Pod:
        def running() -> dict[str, Any]:
            found = self.cluster.kubectl(
                "get", "pod", name, "-n", namespace, "-o", "json", check=False
            )
            if found.returncode != 0:
                return {}
            pod: dict[str, Any] = json.loads(found.stdout)
            statuses = pod["status"].get("containerStatuses") or []
            ready = statuses and "running" in statuses[0]["state"] and pod["status"].get("podIP")
            return pod if ready else {}

        pod = wait_for(running, timeout=READY_TIMEOUT, interval=0.3, message=f"pod {name} runs")
        pid = container_pid(self.cluster.node, pod)
        return Pod(namespace=namespace, name=name, ip=pod["status"]["podIP"], pid=pid)

    def fetch(
        self,
        source: Pod,
        address: str,
        port: int = HTTP_PORT,
        *,
        path: str = "/",
        timeout: float = PROBE_TIMEOUT,
    ) -> str:
        """The body of ``http://address:port/path`` fetched from ``source``'s network namespace, or
        "" when the connection was refused, dropped or not answered within ``timeout``."""
        sock = _socket_in(source.pid)
        try:
            sock.settimeout(timeout)
            sock.connect((address, port))
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        except OSError:
            return ""
        finally:
            sock.close()
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        return body.decode(errors="replace") if head.startswith(b"HTTP/1.") else ""

    def connects(self, source: Pod, address: str, port: int, *, timeout: float) -> bool:
        """Whether a TCP connection from ``source`` is accepted within ``timeout``: the kernel
        answers the handshake, so this stays fast and exact under load (for timing gaps)."""
        sock = _socket_in(source.pid)
        try:
            sock.settimeout(timeout)
            sock.connect((address, port))
        except OSError:
            return False
        finally:
            sock.close()
        return True

    def resolve(self, source: Pod, name: str, server: str = KUBE_DNS_IP) -> str:
        """``nslookup name server`` from ``source``: its output, or "" when it got no answer."""
        return self._in_pod(source, ["nslookup", name, server], timeout=PROBE_TIMEOUT + 3.0)

    def _in_pod(self, source: Pod, applet: list[str], *, timeout: float) -> str:
        """Run a busybox applet in ``source``'s network namespace (only: the files are the
        host's); its output, or "" when it failed or took longer than ``timeout``."""
        argv = ["nsenter", f"--net=/proc/{source.pid}/ns/net", "--", BUSYBOX, *applet]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return ""
        return result.stdout if result.returncode == 0 else ""

    # -- pieces ---------------------------------------------------------------------------------

    def _kube_router_argv(self) -> list[str]:
        """The firewall controller alone: routing and the service proxy stay off (kube-proxy
        does services, the CNI bridge does routing); no metrics or health listeners."""
        return [
            str(KUBE_ROUTER),
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--hostname-override={self.cluster.identity.name}",
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--run-loadbalancer=false",
            "--enable-cni=false",
            "--enable-ipv4=true",
            "--enable-ipv6=false",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--health-port=0",
            "--metrics-port=0",
            "--v=1",
        ]

    def _firewall_programmed(self) -> bool:
        rules = subprocess.run(
            self.cluster.namespace.run_argv(["iptables", "-S", "FORWARD"]),
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return "KUBE-ROUTER-FORWARD" in rules

    def _start_kube_dns(self) -> None:
        """CoreDNS as a pod of kube-system, the way clusters run it, behind the kube-dns
        Service; its API access is the ServiceAccount ``coredns`` (in-cluster config)."""
        corefile = f"""\
.:53 {{
    errors
    health :{COREDNS_HEALTH_PORT}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""
        labels = {"k8s-app": "kube-dns"}
        documents: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "coredns", "namespace": "kube-system"},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "mamori-datapath-coredns"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": COREDNS_USER,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}
                ],
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "coredns", "namespace": "kube-system"},
                "data": {"Corefile": corefile},
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
                "spec": {
                    "clusterIP": KUBE_DNS_IP,
                    "selector": labels,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    ],
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
                "spec": {
                    "nodeName": self.cluster.identity.name,
                    "serviceAccountName": "coredns",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "coredns",
                            "image": BUSYBOX_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["/coredns/coredns", "-conf", "/etc/coredns/Corefile"],
                            "volumeMounts": [
                                {"name": "binary", "mountPath": "/coredns", "readOnly": True},
                                {"name": "config", "mountPath": "/etc/coredns", "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "binary", "hostPath": {"path": str(COREDNS.parent)}},
                        {"name": "config", "configMap": {"name": "coredns"}},
                    ],
                },
            },
        ]
        stream = yaml.safe_dump_all(documents)
        self.cluster.kubectl("apply", "-f", "-", stdin=stream)
        self.kube_dns_pod = self.running_pod("kube-system", "coredns")

    def _start_metadata_stand_in(self) -> None:
        """The metadata namespace, its veth to the cluster's namespace, its two addresses and
        busybox httpd answering on port 80 of both."""
        md, cluster_ns = self.metadata_namespace, self.cluster.namespace
        cluster_end, metadata_end = self._veth
        md.create()
        cluster_ns.ip("link", "add", cluster_end, "type", "veth", "peer", "name", metadata_end)
        cluster_ns.ip("link", "set", metadata_end, "netns", md.name)
        cluster_ns.ip("address", "add", f"{TRANSFER_CLUSTER}/30", "dev", cluster_end)
        cluster_ns.ip("link", "set", cluster_end, "up")
        md.ip("address", "add", f"{TRANSFER_METADATA}/30", "dev", metadata_end)
        for address in (METADATA_IP, METADATA_NEIGHBOUR_IP):
            md.ip("address", "add", f"{address}/32", "dev", metadata_end)
        md.ip("link", "set", metadata_end, "up")
        for address in (METADATA_IP, METADATA_NEIGHBOUR_IP):
            cluster_ns.ip("route", "add", f"{address}/32", "via", TRANSFER_METADATA)
        md.ip("route", "add", str(self.cluster.identity.subnet), "via", TRANSFER_CLUSTER)
        self._metadata_root = Path(tempfile.mkdtemp(prefix="mamori-metadata-"))
        (self._metadata_root / "index.html").write_text("instance-metadata\n")
        self._metadata_server = subprocess.Popen(
            md.run_argv(
                [BUSYBOX, "httpd", "-f", "-p", str(METADATA_PORT), "-h", str(self._metadata_root)]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait(self, ready: Any, *, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            if time.monotonic() > deadline:
                raise DatapathError(f"{what}: not after {READY_TIMEOUT:g}s\n{self.log_tails()}")
            if exited := self.cluster.node.exited():
                raise DatapathError(f"{exited} exited while waiting for {what}\n{self.log_tails()}")
            time.sleep(0.25)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _socket_in(pid: int) -> socket.socket:
    """A TCP socket made inside the network namespace of process ``pid``: its packets leave
    through that namespace's interfaces and routes, with its addresses. Only this thread enters,
    and only while the socket is made."""
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _libc().setns(target, CLONE_NEWNET) != 0:
            raise DatapathError(f"setns into pid {pid}: {os.strerror(ctypes.get_errno())}")
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            if _libc().setns(home, CLONE_NEWNET) != 0:  # never leave a thread in there
                raise DatapathError(f"setns back: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(target)
        os.close(home)
