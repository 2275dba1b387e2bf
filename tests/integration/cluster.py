"""A whole local cluster: the control plane, controllers, a scheduler and one real node.

Built from what ``make controlplane`` and ``make node`` produce, with no Docker. Everything runs
in a network namespace of the cluster's own (mamori_dev/netns.py): etcd, kube-apiserver (listening
there on all its addresses and advertising the bridge's), kube-controller-manager,
kube-scheduler, containerd, the kubelet, kube-proxy (iptables mode, its rules in the namespace),
and the pods on the node's bridge. The host reaches the API server through a loopback relay on
the same port, so ``kubeconfig`` works from the host and inside alike.

One work directory holds all of it (``mamori-cluster-*`` in the system's temporary directory),
with ``owner.pid`` and ``cluster.json`` (the namespace, the node's cgroup root and the host
settings found at start), so that :func:`reap_abandoned_clusters` can take down what a run that
crashed left behind: processes, mounts, cgroups, the namespace, host sysctls.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from mamori.settings import load_settings
from mamori_dev.controlplane import (
    CONTEXT_NAME,
    ClusterNetwork,
    ControlPlaneError,
    ControlPlaneSettings,
    LocalControlPlane,
    process_exists,
)
from mamori_dev.netns import NetworkNamespace
from tests.chart.helm import CHART, Helm
from tests.integration.node_support import (
    CNI_CACHE,
    NODE_BIN,
    TOUCHED_SYSCTLS,
    LocalNode,
    NodeError,
    NodeIdentity,
    StartedOnEnter,
    _processes_mentioning,
    kill_cgroup_processes,
    kill_until_gone,
    make_kubelet_tls,
    read_sysctl,
    remove_cgroups,
    unmount_below,
    write_sysctl,
)

REPOSITORY = Path(__file__).resolve().parents[2]
COREDNS = (
    Path(os.environ.get("MAMORI_COREDNS_BIN", REPOSITORY / ".cache" / "coredns" / "bin"))
    / "coredns"
)
COREDNS_USER = "system:mamori-local-coredns"
COREDNS_RBAC = f"""\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "{COREDNS_USER}"}}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "{COREDNS_USER}"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "{COREDNS_USER}"}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "{COREDNS_USER}"}}]
"""
WORK_DIR_PREFIX = "mamori-cluster-"
SERVICE_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = str(ipaddress.ip_network(SERVICE_RANGE)[1])  # the API server takes it
API_SERVER_NAMES = (
    KUBERNETES_SERVICE_IP,
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
READY_TIMEOUT = 120.0
WEBHOOK_SELECTOR = "app.kubernetes.io/component=webhook"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"


class ClusterError(RuntimeError):
    """The cluster did not come up; the message carries the logs that say why."""


class LocalCluster(StartedOnEnter):
    """Control plane + one node in a namespace of their own; a context manager."""

    def __init__(self, *, images: Sequence[Path] = (), work_root: Path | None = None) -> None:
        """``images``: OCI archives imported into the node before it starts (no registry)."""
        self.images = tuple(images)
        self.work_root = Path(work_root or tempfile.gettempdir())
        self.work_dir = Path()
        self.identity = NodeIdentity.choose()
        self.namespace = NetworkNamespace(f"mamori-{self.identity.suffix}")
        self._plane: LocalControlPlane | None = None
        self._node: LocalNode | None = None
        self._kubeconfigs: dict[str, Path] = {}

    # -- what callers use -----------------------------------------------------------------------

    @property
    def plane(self) -> LocalControlPlane:
        if self._plane is None:
            raise ClusterError("the cluster is not started")
        return self._plane

    @property
    def node(self) -> LocalNode:
        if self._node is None:
            raise ClusterError("the cluster is not started")
        return self._node

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def component_kubeconfig(self, component: str) -> Path:
        """The kubeconfig of ``kubelet``, ``kube-proxy``, ``kube-controller-manager`` or
        ``kube-scheduler`` (each its own identity)."""
        return self._kubeconfigs[component]

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl from the host, through the loopback relay."""
        result = subprocess.run(
            [str(self.plane.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def get_json(self, *args: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return document

    def log_tails(self, lines: int = 30) -> str:
        parts = [self.node.log_tails(lines)] if self._node is not None else []
        if self._plane is not None:
            with contextlib.suppress(ControlPlaneError):
                path = self.plane.work_dir / "kube-apiserver.log"
                if path.exists():
                    text = path.read_text(errors="replace").splitlines()[-lines:]
                    parts.append(f"--- kube-apiserver ({path})\n" + "\n".join(text))
        return "\n".join(parts)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring everything up and return once the node is Ready and kube-proxy has programmed
        the ``kubernetes`` Service."""
        reap_abandoned_clusters(self.work_root)
        self.work_dir = Path(tempfile.mkdtemp(prefix=WORK_DIR_PREFIX, dir=self.work_root))
        (self.work_dir / "owner.pid").write_text(f"{os.getpid()}\n")
        _Record(
            namespace=self.namespace.name,
            cgroup_root=self.identity.cgroup_root,
            node_name=self.identity.name,
            sysctls={name: read_sysctl(name) for name in TOUCHED_SYSCTLS},
        ).write(self.work_dir)
        self.namespace.create()
        tls = make_kubelet_tls(self.work_dir / "tls", identity=self.identity)
        settings = load_settings(ControlPlaneSettings, None, os.environ)
        settings = replace(
            settings,
            work_root=self.work_dir,
            service_account_admission=True,
            service_cluster_ip_range=SERVICE_RANGE,
            apiserver_args=(
                *tls.apiserver_args(),
                *settings.apiserver_args,
            ),
        )
        network = ClusterNetwork(
            namespace=self.namespace,
            advertise_address=self.identity.address,
            certificate_hosts=API_SERVER_NAMES,
        )
        self._plane = LocalControlPlane(settings, network=network)
        self._plane.start()
        self._kubeconfigs = self._component_kubeconfigs(self._plane)
        node_dir = self.work_dir / "node"
        node_dir.mkdir()
        self._node = LocalNode(
            work_dir=node_dir,
            kubeconfig=self._kubeconfigs["kubelet"],
            tls=tls,
            identity=self.identity,
            namespace=self.namespace,
            images=self.images,
            cluster_dns=self.identity.address,
        )
        self._node.start()
        # A connection from the node itself (the API server calling a webhook's Service) is
        # routed before kube-proxy's DNAT: the namespace has no default route, so give the
        # Service range one, to the bridge, where the DNAT sends it on to a pod.
        self.namespace.ip("route", "add", SERVICE_RANGE, "dev", self.identity.bridge)
        self._node.start_process("kube-controller-manager", self._controller_manager_argv())
        self._node.start_process("kube-scheduler", self._scheduler_argv())
        self._node.start_process("kube-proxy", self._kube_proxy_argv())
        self.kubectl("apply", "-f", "-", stdin=COREDNS_RBAC)
        self._node.start_process("coredns", self._coredns_argv())
        self._wait(self._node_ready, what=f"node {self.identity.name} Ready")
        self._wait(self._default_service_account, what="the default ServiceAccount")
        self._wait(self._kubernetes_service_routed, what="kube-proxy's rules for 10.0.0.1")

    def stop(self) -> None:
        """Take everything down, whatever state start() reached; idempotent."""
        problems = []
        node, self._node = self._node, None
        plane, self._plane = self._plane, None
        if node is not None:
            try:
                node.stop()
            except NodeError as error:
                problems.append(str(error))
        if plane is not None:
            plane.stop()
        if self.work_dir != Path():
            try:
                _take_down(self.work_dir)
            except (ClusterError, NodeError) as error:
                problems.append(str(error))
            self.work_dir = Path()
        if problems:
            raise ClusterError("; ".join(problems))

    # -- pieces ---------------------------------------------------------------------------------

    def _component_kubeconfigs(self, plane: LocalControlPlane) -> dict[str, Path]:
        """Each component with the identity the bootstrap RBAC roles expect, never the admin's:
        the kubelet as its node (Node authorizer, NodeRestriction), kube-proxy, the
        controller-manager (its controllers use their own ServiceAccounts) and the scheduler."""
        directory = self.work_dir / "kubeconfigs"
        identities = {
            "kubelet": (f"system:node:{self.identity.name}", ("system:nodes",)),
            "kube-proxy": ("system:kube-proxy", ()),
            "kube-controller-manager": ("system:kube-controller-manager", ()),
            "kube-scheduler": ("system:kube-scheduler", ()),
            "coredns": (COREDNS_USER, ()),
        }
        return {
            name: plane.write_client_kubeconfig(directory / name, user=user, groups=groups)
            for name, (user, groups) in identities.items()
        }

    def _controller_manager_argv(self) -> list[str]:
        plane = self.plane
        return [
            str(NODE_BIN / "kube-controller-manager"),
            f"--kubeconfig={self._kubeconfigs['kube-controller-manager']}",
            f"--service-account-private-key-file={plane.work_dir / 'service-account.key'}",
            f"--root-ca-file={plane.ca_certificate}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--secure-port=0",
            "--controllers=*,-csrsigning,-csrapproving,-csrcleaner,-nodeipam",
            "--kube-api-qps=100",
            "--kube-api-burst=200",
        ]

    def _scheduler_argv(self) -> list[str]:
        config = self.work_dir / "scheduler.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(self._kubeconfigs["kube-scheduler"]),
                        "qps": 100,
                        "burst": 200,
                    },
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        return [str(NODE_BIN / "kube-scheduler"), f"--config={config}", "--secure-port=0"]

    def _kube_proxy_argv(self) -> list[str]:
        config = self.work_dir / "kube-proxy.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(self._kubeconfigs["kube-proxy"])},
                    "mode": "iptables",
                    "hostnameOverride": self.identity.name,
                    "clusterCIDR": str(self.identity.subnet),
                    # The namespace's own loopback: the default ports cannot collide there.
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    # Global kernel settings are the host's: leave conntrack's alone.
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                    "iptables": {"localhostNodePorts": False},
                }
            )
        )
        return [str(NODE_BIN / "kube-proxy"), f"--config={config}", "--v=1"]

    def _coredns_argv(self) -> list[str]:
        """Cluster DNS on the node's address, port 53 (a pod's resolv.conf has no port): the
        ``kubernetes`` plugin only; nothing is forwarded, pods here have no upstream."""
        if not COREDNS.is_file():
            raise ClusterError(f"{COREDNS} is missing: run `make coredns`")
        corefile = self.work_dir / "Corefile"
        corefile.write_text(
            f"""\
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {self.identity.address}
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self._kubeconfigs["coredns"]} {CONTEXT_NAME}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""
        )
        return [str(COREDNS), "-conf", str(corefile)]

    def _node_ready(self) -> bool:
        found = self.kubectl("get", "node", self.identity.name, "-o", "json", check=False)
        if found.returncode != 0:
            return False
        conditions = json.loads(found.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _default_service_account(self) -> bool:
        found = self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
        return found.returncode == 0

    def _kubernetes_service_routed(self) -> bool:
        rules = subprocess.run(
            self.namespace.run_argv(["iptables", "-t", "nat", "-S", "KUBE-SERVICES"]),
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return f"-d {KUBERNETES_SERVICE_IP}/32" in rules

    def _wait(self, ready: Callable[[], bool], *, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            if time.monotonic() > deadline:
                raise ClusterError(f"{what}: not after {READY_TIMEOUT:g}s\n{self.log_tails()}")
            self.plane.check_running()
            if exited := self.node.exited():
                raise ClusterError(f"{exited} exited while waiting for {what}\n{self.log_tails()}")
            time.sleep(0.25)


# -- what a crashed run leaves behind ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Record:
    """cluster.json: what reap_abandoned_clusters needs to undo a run it never saw."""

    namespace: str
    cgroup_root: str
    node_name: str
    sysctls: dict[str, str]

    def write(self, work_dir: Path) -> None:
        (work_dir / "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, work_dir: Path) -> _Record | None:
        try:
            return cls(**json.loads((work_dir / "cluster.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None


def reap_abandoned_clusters(parent: Path) -> list[Path]:
    """Take down every cluster under ``parent`` whose owner is dead; return their directories."""
    reaped = []
    for work_dir in sorted(parent.glob(f"{WORK_DIR_PREFIX}*")):
        owner = work_dir / "owner.pid"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue  # being written, or kept on purpose for reading
        if process_exists(pid):
            continue
        _take_down(work_dir, restore_sysctls=True)
        reaped.append(work_dir)
    return reaped


def _take_down(work_dir: Path, *, restore_sysctls: bool = False) -> None:
    """Kill, unmount, remove: whatever of one cluster is still on the host (a no-op when a clean
    stop already did it), then the directory."""
    record = _Record.read(work_dir)
    namespace = NetworkNamespace(record.namespace) if record else None
    kill_until_gone(
        lambda: [*_processes_mentioning(str(work_dir)), *(namespace.pids() if namespace else ())],
        what=f"processes of {work_dir}",
    )
    unmount_below(work_dir)
    if record is not None:
        # Containers live in pod namespaces, not the cluster's: their cgroups find them.
        kill_cgroup_processes(record.cgroup_root)
        remove_cgroups(record.cgroup_root)
        if CNI_CACHE.is_dir():
            for entry in CNI_CACHE.glob(f"{record.node_name}-*"):
                entry.unlink(missing_ok=True)
        if restore_sysctls:
            for name, value in record.sysctls.items():
                write_sysctl(name, value)
    if namespace is not None:
        namespace.delete()
    shutil.rmtree(work_dir, ignore_errors=True)


# -- mamori on it ---------------------------------------------------------------------------


def install_mamori(
    cluster: LocalCluster,
    helm: Helm,
    *,
    image: str,
    release: str = "mamori",
    namespace: str = "mamori-system",
    settings: Sequence[str] = (),
) -> float:
    """``helm install`` of charts/mamori with ``image`` (``repository:tag``, on the node
    already) and ``settings`` (``key=value``); seconds until 3 webhook and 2 operator pods were
    Ready (the chart's defaults) and the operator had put its CA into every webhook's caBundle
    (until then the API server cannot call the webhook)."""
    started = time.monotonic()
    repository, _, tag = image.rpartition(":")
    helm(
        "install", release, str(CHART), f"--namespace={namespace}", "--create-namespace",
        f"--set=image.repository={repository}", f"--set=image.tag={tag}",
        *(f"--set={setting}" for setting in settings),
    )  # fmt: skip
    deadline = started + READY_TIMEOUT
    while not (
        ready_pods(cluster, namespace, WEBHOOK_SELECTOR) == 3
        and ready_pods(cluster, namespace, OPERATOR_SELECTOR) == 2
        and bundles_injected(cluster, release)
    ):
        if time.monotonic() > deadline:
            pods = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
            raise ClusterError(f"mamori's pods not Ready after {READY_TIMEOUT:g}s:\n{pods}")
        time.sleep(0.5)
    return time.monotonic() - started


def bundles_injected(cluster: LocalCluster, configuration: str) -> bool:
    """Every webhook of the ValidatingWebhookConfiguration has a caBundle."""
    found = cluster.kubectl(
        "get", "validatingwebhookconfiguration", configuration, "-o", "json", check=False
    )
    if found.returncode != 0:
        return False
    webhooks = json.loads(found.stdout).get("webhooks") or []
    return bool(webhooks) and all(w.get("clientConfig", {}).get("caBundle") for w in webhooks)


def ready_pods(cluster: LocalCluster, namespace: str, selector: str) -> int:
    """Pods matching ``selector`` that are Ready and not being deleted."""
    pods = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return sum(
        1
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod["status"].get("conditions", [])
        )
    )
