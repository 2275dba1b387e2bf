"""A real node for integration tests: containerd 2.x (CRI) + runc + CNI bridge + a kubelet.

Everything comes from ``make node`` (.cache/node/bin) and Debian (runc, busybox-static), and
everything lives under one temporary directory: containerd's root, state and socket, the
kubelet's root and pod logs, the CNI configuration and IPAM state, and the network namespaces
(``netns_mounts_under_state_dir``). Images cannot be pulled here, so :func:`write_busybox_archive`
writes an OCI archive by hand (node_images.py) that is imported with ``ctr images import``.

What the node changes outside that directory, and what :meth:`LocalNode.stop` puts back even
after a failure (the test checks it with :func:`leftovers`): its bridge ``mamori-<id>`` on a
random /24 of 10.213.0.0/16 that no host route or address overlaps when chosen (this host has
only 192.0.2.0/24 and a default route; a collision would also show as a route and be skipped);
the pods get no default route and no masquerading, so nothing they send can leave the machine.
Also: the cgroups under its own parent ``/mamori-node-<id>`` (every v1 controller and the
cgroup2 mirror runc makes), the iptables chains that appeared while it ran (none, with
``makeIPTablesUtilChains: false`` and ``ipMasq: false``), the shim processes and their sockets in
/run/containerd/s, libcni's result cache in /var/lib/cni, the kubelet's fixed
/var/lib/kubelet/device-plugins, and the sysctls that the kubelet (vm.overcommit_memory,
kernel.panic, ...) and the bridge plugin (ip_forward) rewrite.

Addresses and authentication, for a test: the kubelet refuses a loopback node IP, so the node's
InternalIP is the bridge's own address (local to the host), where the kubelet's HTTPS API
listens with a serving certificate from the node's CA for that address; it accepts only client
certificates of that CA (anonymous off, authorization AlwaysAllow). The API server gets one
(``--kubelet-client-certificate``), verifies the kubelet against the CA and dials InternalIP
only (the default tries the node name first: a DNS lookup). The kubelet reaches the API server
with the kubeconfig it is given: the admin's in test_node.py, its own node identity
(``system:node:NAME``, Node authorizer, NodeRestriction) in a LocalCluster.

Host quirks met here: CAP_SYS_RESOURCE is withheld, so runc cannot lower oom_score_adj
(``restrict_oom_score_adj = true``); the hierarchy is cgroup v1 (``failCgroupV1: false``).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

import yaml

from mamori_dev.localca import LocalCA
from mamori_dev.netns import NetworkNamespace
from tests.integration.node_images import (
    BUSYBOX_IMAGE,
    PAUSE_IMAGE,
    write_busybox_archive,
)

REPOSITORY = Path(__file__).resolve().parents[2]
NODE_BIN = Path(os.environ.get("MAMORI_NODE_BIN", REPOSITORY / ".cache" / "node" / "bin"))
LOOPBACK = "127.0.0.1"
POD_SUPERNET = ipaddress.IPv4Network("10.213.0.0/16")
CGROUP_V1 = Path("/sys/fs/cgroup")
SHIM_SOCKETS = Path("/run/containerd/s")
CNI_CACHE = Path("/var/lib/cni/results")  # libcni's, not configurable through containerd
KUBELET_DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")  # the kubelet's, fixed
TOUCHED_SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
STOP_TIMEOUT = 15.0
NONROOT_UID = 65532


class NodeError(RuntimeError):
    """The node could not start; the message carries the log tails."""


# -- the node ---------------------------------------------------------------------------------


class StartedOnEnter:
    """A context manager over ``start()``/``stop()``: stop() also runs when start() fails
    halfway, so a half-started node or cluster never outlives its test."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True, kw_only=True)
class NodeIdentity:
    """Names and addresses chosen once per node, before anything starts."""

    suffix: str
    subnet: ipaddress.IPv4Network

    @property
    def name(self) -> str:
        return f"mamori-node-{self.suffix}"

    @property
    def bridge(self) -> str:
        return f"mamori-{self.suffix}"  # at most 15 characters, the kernel's limit

    @property
    def cgroup_root(self) -> str:
        return f"/mamori-node-{self.suffix}"

    @property
    def address(self) -> str:
        """The bridge's (the pods' gateway's) address: the node's InternalIP, where the kubelet
        listens. The kubelet refuses a loopback node IP; this one is local to the host too."""
        return str(self.subnet.network_address + 1)

    @classmethod
    def choose(cls) -> NodeIdentity:
        return cls(suffix=os.urandom(3).hex(), subnet=_free_pod_subnet())


@dataclass(frozen=True, kw_only=True)
class KubeletTLS:
    """The node's own CA: the kubelet's serving certificate and the API server's client one."""

    ca_certificate: Path
    serving_certificate: Path
    serving_key: Path
    apiserver_client_certificate: Path
    apiserver_client_key: Path

    def apiserver_args(self) -> tuple[str, ...]:
        """kube-apiserver flags: reach the kubelet at its InternalIP only (the default tries the
        Hostname first, i.e. a DNS lookup), present our client cert, verify the kubelet's."""
        return (
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={self.apiserver_client_certificate}",
            f"--kubelet-client-key={self.apiserver_client_key}",
            f"--kubelet-certificate-authority={self.ca_certificate}",
        )


def make_kubelet_tls(directory: Path, *, identity: NodeIdentity) -> KubeletTLS:
    """Issue the kubelet TLS material into ``directory`` (before the control plane starts)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = LocalCA("mamori-node-ca")
    tls = KubeletTLS(
        ca_certificate=directory / "node-ca.crt",
        serving_certificate=directory / "kubelet.crt",
        serving_key=directory / "kubelet.key",
        apiserver_client_certificate=directory / "apiserver-kubelet-client.crt",
        apiserver_client_key=directory / "apiserver-kubelet-client.key",
    )
    tls.ca_certificate.write_bytes(ca.certificate_pem)
    ca.issue_server("kubelet", hosts=(identity.address, identity.name)).write(
        certificate=tls.serving_certificate, key=tls.serving_key
    )
    ca.issue_client("kube-apiserver-kubelet-client", groups=()).write(
        certificate=tls.apiserver_client_certificate, key=tls.apiserver_client_key
    )
    return tls


@dataclass
class _Started:
    """What stop() must undo; filled in as start() goes."""

    processes: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)
    cgroups_made: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    iptables_chains: set[tuple[str, str]] = field(default_factory=set)
    shim_sockets: set[str] | None = None
    host_dirs: dict[Path, bool] = field(default_factory=dict)  # path -> existed before


class LocalNode(StartedOnEnter):
    """containerd + kubelet registered with ``kubeconfig``'s API server; a context manager."""

    def __init__(
        self,
        *,
        work_dir: Path,
        kubeconfig: Path,
        tls: KubeletTLS,
        identity: NodeIdentity,
        namespace: NetworkNamespace | None = None,
        images: Sequence[Path] = (),
        cluster_dns: str | None = None,
    ) -> None:
        """``namespace``: run inside it (a whole local cluster, mamori_dev/netns.py), where pods get
        a default route through the bridge so that Service ClusterIPs reach them; without it the
        node shares the host's network and pods reach only their subnet. ``images``: more OCI
        archives to import before the kubelet starts. ``cluster_dns``: the address pods resolve
        ``*.svc.cluster.local`` names at (none: pods get no cluster DNS)."""
        self.work_dir = work_dir
        self.kubeconfig = kubeconfig
        self.tls = tls
        self.identity = identity
        self.namespace = namespace
        self.images = tuple(images)
        self.cluster_dns = cluster_dns
        self._started = _Started()

    # -- paths ----------------------------------------------------------------------------------

    @property
    def containerd_socket(self) -> Path:
        return self.work_dir / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.work_dir / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.work_dir / "containerd" / "state"

    def ctr(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``ctr`` against this node's containerd (namespace k8s.io, the CRI's)."""
        argv = [str(NODE_BIN / "ctr"), "--address", str(self.containerd_socket), "-n", "k8s.io"]
        result = subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start containerd, import the images, start the kubelet (readiness is the caller's)."""
        started = self._started
        started.sysctls = {name: read_sysctl(name) for name in TOUCHED_SYSCTLS}
        started.iptables_chains = _iptables_chains()
        started.shim_sockets = _existing_shim_sockets()
        started.host_dirs = {
            path: path.exists()
            for path in (
                CNI_CACHE,
                CNI_CACHE.parent,
                KUBELET_DEVICE_PLUGINS,
                KUBELET_DEVICE_PLUGINS.parent,
            )
        }
        self._make_cgroup_root()
        self._make_bridge()
        self._write_cni_config()
        self._start_process("containerd", self._containerd_argv())
        self._wait(lambda: self.containerd_socket.is_socket(), what="containerd's socket")
        archive = self.work_dir / "images.oci.tar"
        write_busybox_archive(
            archive,
            images={
                PAUSE_IMAGE: ("/bin/sleep", "2147483647"),
                BUSYBOX_IMAGE: ("/bin/sh",),
            },
        )
        for path in (archive, *self.images):
            self.ctr("images", "import", "--platform", "linux/amd64", str(path))
        self._start_process("kubelet", self._kubelet_argv())

    def start_process(self, name: str, argv: Sequence[str]) -> None:
        """Start another server of the node (kube-proxy, ...), stopped by stop() before the
        kubelet; its log is ``NAME.log`` in the work directory."""
        self._start_process(name, argv)

    def stop(self) -> None:
        """Undo everything start() did, in reverse, whatever state it reached; idempotent."""
        started, self._started = self._started, _Started()
        problems: list[str] = []

        def attempt(what: str, action: Callable[[], None]) -> None:
            try:
                action()
            except Exception as error:  # keep cleaning; report all at the end
                problems.append(f"{what}: {error}")

        by_name = {name: (popen, log) for name, popen, log in started.processes}
        for name in by_name.keys() - {"kubelet", "containerd"}:
            attempt(f"stop {name}", functools.partial(_stop, by_name[name][0]))
        if "kubelet" in by_name:
            attempt("stop kubelet", lambda: _stop(by_name["kubelet"][0]))
        attempt("kill containers", lambda: kill_cgroup_processes(self.identity.cgroup_root))
        attempt("kill shims", self._kill_shims)
        attempt("CNI cache", self._remove_cni_cache)
        if "containerd" in by_name:
            attempt("stop containerd", lambda: _stop(by_name["containerd"][0]))
        for _, log in by_name.values():
            log.close()
        attempt("unmount", lambda: unmount_below(self.work_dir))
        attempt("delete bridge", self._delete_bridge)
        if started.cgroups_made:
            attempt("remove cgroups", lambda: remove_cgroups(self.identity.cgroup_root))
        if started.iptables_chains or started.sysctls:
            attempt("iptables", lambda: _delete_new_chains(started.iptables_chains))
        for name, value in started.sysctls.items():
            attempt(f"restore {name}", functools.partial(write_sysctl, name, value))
        if started.sysctls:
            attempt("shim sockets", lambda: _remove_dead_sockets(started.shim_sockets))
        if started.host_dirs:
            attempt("host directories", lambda: _remove_host_leftovers(started.host_dirs))
        if problems:
            raise NodeError("cleaning up the node: " + "; ".join(problems))

    def exited(self) -> str:
        """The name of a server of the node that has exited, or ""."""
        for name, popen, _ in self._started.processes:
            if popen.poll() is not None:
                return name
        return ""

    def log_tails(self, lines: int = 30) -> str:
        """The end of each log, for a failure message."""
        parts = []
        for name, _, _ in self._started.processes:
            path = self.work_dir / f"{name}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            parts.append(f"--- {name} ({path})\n" + "\n".join(text))
        return "\n".join(parts)

    # -- pieces ---------------------------------------------------------------------------------

    def _start_process(self, name: str, argv: Sequence[str]) -> None:
        log = (self.work_dir / f"{name}.log").open("wb")
        env = dict(os.environ, PATH=f"{NODE_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        if self.namespace is not None:
            argv = self.namespace.run_argv(argv)
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._started.processes.append((name, popen, log))

    def _wait(self, ready: Callable[[], bool], *, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, popen, _ in self._started.processes:
                if popen.poll() is not None:
                    raise NodeError(f"{name} exited while waiting for {what}\n{self.log_tails()}")
            if time.monotonic() > deadline:
                raise NodeError(f"{what} not ready after {timeout:g}s\n{self.log_tails()}")
            time.sleep(0.2)

    def _containerd_argv(self) -> list[str]:
        config = self.work_dir / "containerd.toml"
        config.write_text(self._containerd_config())
        return [str(NODE_BIN / "containerd"), "--config", str(config), "--log-level", "info"]

    def _containerd_config(self) -> str:
        cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
        runc = f"{cri_runtime}.containerd.runtimes.runc"
        return f"""\
version = 3
root = "{self.containerd_root}"
state = "{self.containerd_state}"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{self.work_dir / "containerd-ttrpc.sock"}"

[plugins.'io.containerd.internal.v1.opt']
  path = "{self.work_dir / "containerd" / "opt"}"

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "{LOOPBACK}"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[{cri_runtime}]
  netns_mounts_under_state_dir = true
  # This host withholds CAP_SYS_RESOURCE: never ask runc for a lower oom_score_adj than ours.
  restrict_oom_score_adj = true
  enable_cdi = false
  [{cri_runtime}.containerd]
    default_runtime_name = "runc"
  [{runc}]
    runtime_type = "io.containerd.runc.v2"
  [{runc}.options]
    BinaryName = "{shutil.which("runc") or "runc"}"
    Root = "{self.work_dir / "runc"}"
    SystemdCgroup = false
  [{cri_runtime}.cni]
    bin_dirs = ["{NODE_BIN / "cni"}"]
    conf_dir = "{self.work_dir / "cni" / "net.d"}"
"""

    def _write_cni_config(self) -> None:
        conf_dir = self.work_dir / "cni" / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        # In the cluster's own namespace the bridge leads nowhere but to the node itself, so a
        # default route is safe there, and pods need it to reach Service ClusterIPs.
        routes = [{"dst": "0.0.0.0/0"}] if self.namespace is not None else []
        network = {
            "cniVersion": "1.0.0",
            "name": self.identity.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.identity.bridge,
                    # The bridge gets the gateway address so the host reaches pods; no route
                    # beyond the subnet is given to pods, and no masquerading: nothing leaves.
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,  # a pod reaches itself through its own Service
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(self.identity.subnet)}]],
                        "routes": routes,
                        "dataDir": str(self.work_dir / "cni" / "ipam"),
                    },
                }
            ],
        }
        (conf_dir / "10-mamori.conflist").write_text(json.dumps(network, indent=2))

    def _kubelet_argv(self) -> list[str]:
        root = self.work_dir / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This host has the cgroup v1 hierarchy, which 1.35+ refuse unless told otherwise.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.identity.cgroup_root,
            "cgroupsPerQOS": True,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "failSwapOn": False,
            "address": self.identity.address,
            "port": _free_port(),
            "readOnlyPort": 0,
            "healthzPort": 0,
            "tlsCertFile": str(self.tls.serving_certificate),
            "tlsPrivateKeyFile": str(self.tls.serving_key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.tls.ca_certificate)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "podLogsDir": str(self.work_dir / "pod-logs"),
            "localStorageCapacityIsolation": False,
            "makeIPTablesUtilChains": False,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "registerNode": True,
            "resolvConf": "",
        }
        if self.cluster_dns is not None:
            config.update(clusterDNS=[self.cluster_dns], clusterDomain="cluster.local")
        config_path = self.work_dir / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(config))
        return [
            str(NODE_BIN / "kubelet"),
            f"--config={config_path}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={root}",
            f"--hostname-override={self.identity.name}",
            f"--node-ip={self.identity.address}",
            "--v=2",
        ]

    def _make_cgroup_root(self) -> None:
        self._started.cgroups_made = True
        for controller in _cgroup_controllers():
            path = controller / self.identity.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            if controller.name == "cpuset":  # v1 cpusets start empty: inherit the parent's
                for name in ("cpuset.cpus", "cpuset.mems"):
                    (path / name).write_text((controller / name).read_text())

    def _kill_shims(self) -> None:
        """SIGKILL the runc shims serving this containerd (they outlive it on purpose), and
        wait until they are gone, so that nothing of ours still runs when stop() returns."""
        kill_until_gone(
            lambda: _processes_mentioning(str(self.containerd_socket)), what="runc shims"
        )

    def _remove_cni_cache(self) -> None:
        """libcni's cached results for this node's network and its sandboxes' loopbacks."""
        sandboxes = self.containerd_root / "io.containerd.grpc.v1.cri" / "sandboxes"
        ids = [p.name for p in sandboxes.iterdir()] if sandboxes.is_dir() else []
        if not CNI_CACHE.is_dir():
            return
        for entry in CNI_CACHE.iterdir():
            if entry.name.startswith(f"{self.identity.name}-") or any(
                entry.name == f"cni-loopback-{sandbox}-lo" for sandbox in ids
            ):
                entry.unlink(missing_ok=True)

    def _make_bridge(self) -> None:
        """The CNI bridge, made now so that the kubelet can listen on its address at once."""
        bridge = self.identity.bridge
        address = f"{self.identity.address}/{self.identity.subnet.prefixlen}"
        for command in (
            ["link", "add", "name", bridge, "type", "bridge"],
            ["address", "add", address, "dev", bridge],
            ["link", "set", bridge, "up"],
        ):
            subprocess.run([*self._ip(), *command], check=True, capture_output=True)

    def _delete_bridge(self) -> None:
        if self.namespace is not None and not self.namespace.exists:
            return  # it went with the namespace
        found = subprocess.run(
            [*self._ip(), "link", "show", self.identity.bridge], capture_output=True, check=False
        )
        if found.returncode == 0:
            subprocess.run([*self._ip(), "link", "delete", self.identity.bridge], check=True)

    def _ip(self) -> list[str]:
        return ["ip"] if self.namespace is None else ["ip", "-n", self.namespace.name]


# -- host helpers ---------------------------------------------------------------------------------


def unmount_below(directory: Path) -> None:
    """Detach every mount at or under ``directory``, deepest first (overlays, netns, shm)."""
    prefix = str(directory.resolve())
    for _ in range(10):  # a detached parent can reveal nothing new, but nested binds can
        targets = [
            target
            for target in _mount_targets()
            if target == prefix or target.startswith(prefix + "/")
        ]
        if not targets:
            return
        for target in sorted(targets, key=len, reverse=True):
            subprocess.run(["umount", "--lazy", target], check=False, capture_output=True)
    raise NodeError(f"mounts left under {directory}: {targets}")


def _mount_targets() -> list[str]:
    targets = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        targets.append(target.replace("\\040", " "))
    return targets


def _cgroup_controllers(*, include_unified: bool = False) -> list[Path]:
    """The v1 hierarchies (cpu, memory, ..., name=systemd), and the cgroup2 one if asked."""
    kinds = ("cgroup", "cgroup2") if include_unified else ("cgroup",)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        if fields[separator + 1] in kinds and fields[4].startswith(str(CGROUP_V1)):
            found.append(Path(fields[4]))
    return found


def _free_pod_subnet() -> ipaddress.IPv4Network:
    """A random /24 of 10.213.0.0/16 that no host route or address overlaps now."""
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        destination = line.split()[0]
        if destination[0].isdigit() or destination == "local":
            word = line.split()[1] if destination in ("local", "broadcast") else destination
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.ip_network(word, strict=False))
    candidates = list(POD_SUPERNET.subnets(new_prefix=24))
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(other) for other in taken if other.prefixlen > 0):
            return subnet
    raise NodeError(f"no free /24 in {POD_SUPERNET}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def cgroup_dirs(cgroup_root: str) -> list[Path]:
    """A node's cgroups under ``cgroup_root`` in every hierarchy (runc also mirrors them in
    cgroup2's), deepest first."""
    found: list[Path] = []
    for controller in _cgroup_controllers(include_unified=True):
        top = controller / cgroup_root.lstrip("/")
        if top.is_dir():
            found.extend(p for p in top.rglob("*") if p.is_dir())
            found.append(top)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def kill_cgroup_processes(cgroup_root: str) -> None:
    """SIGKILL every process in a node's cgroups (containers live in pod namespaces: only their
    cgroups find them all)."""
    for directory in cgroup_dirs(cgroup_root):
        with contextlib.suppress(OSError):
            for pid in (directory / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)


def remove_cgroups(cgroup_root: str) -> None:
    """Remove a node's cgroups, deepest first, killing what still runs in them meanwhile."""
    deadline = time.monotonic() + STOP_TIMEOUT
    for directory in cgroup_dirs(cgroup_root):
        while True:
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                kill_cgroup_processes(cgroup_root)
                time.sleep(0.1)


def kill_until_gone(find: Callable[[], Iterable[int]], *, what: str) -> None:
    """SIGKILL what ``find`` lists until it lists nothing (this process never counts)."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while victims := set(find()) - {os.getpid()}:
        if time.monotonic() > deadline:
            raise NodeError(f"{what} still running after SIGKILL: {sorted(victims)}")
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def read_sysctl(name: str) -> str:
    return (Path("/proc/sys") / name).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    path = Path("/proc/sys") / name
    if path.read_text().strip() != value:
        path.write_text(value)


def _iptables_chains() -> set[tuple[str, str]]:
    """(table, chain) for every chain iptables lists now."""
    chains = set()
    for table in ("filter", "nat", "mangle"):
        listing = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout
        for line in listing.splitlines():
            if line.startswith(("-N ", "-P ")):
                chains.add((table, line.split()[1]))
    return chains


def _delete_new_chains(before: set[tuple[str, str]]) -> None:
    """Flush and delete chains that appeared since ``before`` (rules jumping to them first)."""
    new = _iptables_chains() - before
    for table, chain in new:
        listing = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=True
        ).stdout
        for rule in listing.splitlines():
            if rule.startswith("-A ") and f"-j {chain}" in rule:
                subprocess.run(["iptables", "-t", table, "-D", *rule.split()[1:]], check=False)
    for table, chain in new:
        subprocess.run(["iptables", "-t", table, "-F", chain], check=False)
    for table, chain in new:
        subprocess.run(["iptables", "-t", table, "-X", chain], check=True)


def _shim_sockets() -> set[str]:
    return {p.name for p in SHIM_SOCKETS.iterdir()} if SHIM_SOCKETS.is_dir() else set()


def _existing_shim_sockets() -> set[str] | None:
    """The shim sockets now, or None when containerd's socket directory does not exist yet."""
    return _shim_sockets() if SHIM_SOCKETS.is_dir() else None


def _remove_dead_sockets(before: set[str] | None) -> None:
    """Remove shim sockets that appeared while we ran and that nobody listens on any more.

    ``before`` is None when the directory did not exist: it goes too once empty.
    """
    for name in _shim_sockets() - (before or set()):
        path = SHIM_SOCKETS / name
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink(missing_ok=True)
    if before is None:
        for directory in (SHIM_SOCKETS, SHIM_SOCKETS.parent):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty: another containerd may use it


def _remove_host_leftovers(existed: dict[Path, bool]) -> None:
    """The kubelet's device-plugin socket, then the directories that we made and left empty."""
    socket_path = KUBELET_DEVICE_PLUGINS / "kubelet.sock"
    if socket_path.exists():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(socket_path))
            except OSError:  # nobody listens: its kubelet was ours, and it is gone
                socket_path.unlink(missing_ok=True)
    for path, was_there in existed.items():  # deepest first
        if not was_there:
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty


def _stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


def leftovers(*, identity: NodeIdentity, work_dir: Path) -> list[str]:
    """What of a stopped node is still on the host (empty when stop() did its job)."""
    found = []
    if Path(f"/sys/class/net/{identity.bridge}").exists():
        found.append(f"bridge {identity.bridge}")
    found += [f"cgroup {cgroup}" for cgroup in cgroup_dirs(identity.cgroup_root)]
    prefix = str(work_dir.resolve())
    found += [f"mount {t}" for t in _mount_targets() if t.startswith(prefix)]
    for pid in _processes_mentioning(prefix):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            found.append(f"process {pid}: {argv.decode(errors='replace')[:300]}")
    return found


def _processes_mentioning(text: str) -> list[int]:
    """Live processes with ``text`` in their command line (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


@contextlib.contextmanager
def node_work_dir() -> Iterator[Path]:
    """A temporary directory for one node, removed (after its mounts) on exit."""
    directory = Path(tempfile.mkdtemp(prefix="mamori-node-"))
    try:
        yield directory
    finally:
        unmount_below(directory)
        shutil.rmtree(directory, ignore_errors=True)


# -- what the kubelet applied -------------------------------------------------------------------


def restricted_pod_spec(command: Sequence[str]) -> dict[str, Any]:
    """A pod spec that the restricted profile admits: one busybox container running
    ``command`` as uid 65532, no token mounted, quick to stop."""
    return {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 1,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "app",
                "image": BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",
                "command": list(command),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def container_pid(node: LocalNode, pod: dict[str, Any]) -> int:
    """The host pid of a running pod's first container (from containerd, not from the API)."""
    container_id = str(pod["status"]["containerStatuses"][0]["containerID"]).split("://", 1)[1]
    tasks = node.ctr("tasks", "ls").splitlines()
    return next(int(line.split()[1]) for line in tasks if line.startswith(container_id))


def assert_runs_restricted(pid: int, *, uid: int = NONROOT_UID) -> None:
    """What the restricted profile asks for, read from /proc: the non-root uid, a seccomp filter
    (mode 2: the runtime's default profile), no new privileges, no effective capabilities."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Seccomp"].strip() == "2"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["CapEff"].strip() == "0000000000000000"
