"""A local Kubernetes control plane (etcd + kube-apiserver) for integration tests and the demo.

No Docker here, so like controller-runtime's envtest we run the two real server binaries that
``make controlplane`` builds from Go modules, on free loopback ports, with a throwaway PKI. There
is no scheduler, kubelet or controller-manager: objects are stored, validated and sent through
admission exactly as on a real cluster, but Pods stay Pending and nothing reconciles.

Two consequences shape the defaults. The ServiceAccount admission plugin is disabled (as envtest
does), because without the controller-manager no namespace ever gets its ``default``
ServiceAccount and every Pod would be refused. Deleting a namespace leaves it Terminating forever
(the namespace controller is missing), so tests use a fresh namespace each.

Every process runs in its own process group and is stopped with SIGTERM, then SIGKILL; the
temporary directory goes with it. Stopping also happens at interpreter exit and on SIGTERM/SIGHUP,
so an interrupted test run leaves nothing behind. When the control plane itself fails, its
directory (certificates and logs) is kept and its path printed.

Fault tests need the API server to go away and come back as clients know it: ``stop_apiserver``
(SIGTERM, or SIGKILL with ``kill=True``), ``start_apiserver`` and ``restart_apiserver`` bring it
back on the same port with the same etcd and PKI, so kubeconfigs and stored objects stay valid;
each start logs to its own file (``kube-apiserver.log``, ``kube-apiserver-2.log``, ...).
``compact_etcd`` compacts etcd past its current revision through etcd's JSON gateway: with
``apiserver_args=("--watch-cache=false",)`` every watch from a resourceVersion seen before then
gets 410 Gone, the way a long-lived watch does on a busy cluster.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import yaml

from mamori.settings import SettingsError, load_settings, setting
from mamori.settings import add_arguments as add_settings_arguments
from mamori_dev.localca import KeyPair, LocalCA, generate_signing_key
from mamori_dev.netns import LoopbackRelay, NetworkNamespace

REPOSITORY = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
CONTEXT_NAME = "mamori-local"
LOG_TAIL_LINES = 25
LOG_TAIL_BYTES = 64 * 1024
POLL_INTERVAL = 0.2
BINARIES = ("etcd", "kube-apiserver", "kubectl")
WORK_DIR_PREFIX = "mamori-controlplane-"
PR_SET_PDEATHSIG = 1
COMPACTION_MARK_KEY = b"/mamori-fault-test/compaction"  # outside /registry: no API object


class ControlPlaneError(RuntimeError):
    """The control plane could not start or stopped on its own; the message says why."""


@dataclass(frozen=True, kw_only=True)
class ControlPlaneSettings:
    """Where the binaries are and how patient to be; every field is also a flag and MAMORI_*."""

    controlplane_bin: Path = setting(
        REPOSITORY / ".cache" / "controlplane" / "bin",
        help="directory with etcd, kube-apiserver and kubectl (built by `make controlplane`)",
        metavar="DIR",
    )
    startup_timeout: float = setting(
        90.0, help="seconds to wait for etcd and kube-apiserver to become ready", metavar="SECONDS"
    )
    stop_timeout: float = setting(
        15.0, help="seconds a process gets after SIGTERM before SIGKILL", metavar="SECONDS"
    )
    work_root: Path | None = setting(
        None, help="parent of the temporary directory (default: the system's)", metavar="DIR"
    )
    keep_work_dir: bool = setting(
        False, help="keep certificates and logs after a clean stop (they are kept on failure)"
    )
    service_cluster_ip_range: str = setting(
        "10.0.0.0/24", help="kube-apiserver --service-cluster-ip-range", metavar="CIDR"
    )
    service_account_admission: bool = setting(
        False,
        help="keep the ServiceAccount admission plugin (Pods then need a ServiceAccount that "
        "nothing here creates)",
    )
    apiserver_args: tuple[str, ...] = setting(
        (),
        help="more kube-apiserver flags, comma-separated, appended last so they win "
        "(e.g. --watch-cache=false; a flag whose value has commas needs the Python API)",
        metavar="FLAGS",
    )

    def validate(self) -> None:
        if self.startup_timeout <= 0:
            raise SettingsError(f"--startup-timeout={self.startup_timeout}: must be > 0")
        for flag in self.apiserver_args:
            if not flag.startswith("--"):
                raise SettingsError(
                    f"--apiserver-args: {flag!r} is not a flag (expected --name=value)"
                )


@dataclass(frozen=True)
class ControlPlaneFiles:
    """Paths inside the work directory, named once so tests and error messages agree."""

    root: Path

    @property
    def ca_certificate(self) -> Path:
        return self.root / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd-data"

    @property
    def owner(self) -> Path:
        """The pid of the process that started it; gone once the directory is kept on purpose."""
        return self.root / "owner.pid"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"


@dataclass(frozen=True, kw_only=True)
class ClusterNetwork:
    """Run the control plane inside ``namespace`` (a local cluster with a node, see
    mamori_dev/netns.py): the API server listens on every address in there and advertises
    ``advertise_address`` (where pods reach it through the ``kubernetes`` Service); its
    certificate also names ``certificate_hosts``. The host reaches both servers through loopback
    relays on the same ports, so the kubeconfig is the same inside and out. Nodes join such a
    control plane, so it authorizes them as a real one does (Node authorizer, NodeRestriction)."""

    namespace: NetworkNamespace
    advertise_address: str
    certificate_hosts: tuple[str, ...] = ()


class ManagedProcess:
    """One server binary in its own process group, output to a log file."""

    def __init__(self, *, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_child_environment(),
            start_new_session=True,
            preexec_fn=_die_with_parent_hook(),
        )
        self.stopping = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited_on_its_own(self) -> bool:
        return self.popen.poll() is not None and not self.stopping

    def stop(self, *, timeout: float) -> None:
        """SIGTERM the whole group, wait, SIGKILL what is left; always reap the child."""
        self.stopping = True
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()

    def describe(self) -> str:
        status = self.popen.poll()
        state = "running" if status is None else f"exited with status {status}"
        return f"{self.name} (pid {self.pid}) {state}; log {self.log_path}:\n{self.tail()}"

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the log (read from its end: a long demo makes a big log)."""
        if not self._log.closed:
            self._log.flush()
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                text = log.read().decode(errors="replace")
        except OSError as error:
            return f"    (log unreadable: {error})"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


class LocalControlPlane:
    """etcd + kube-apiserver on loopback; use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        settings: ControlPlaneSettings | None = None,
        *,
        network: ClusterNetwork | None = None,
    ) -> None:
        self.settings = settings or ControlPlaneSettings()
        self.network = network
        self._relays: list[LoopbackRelay] = []
        self._ca: LocalCA | None = None
        self._files: ControlPlaneFiles | None = None
        self._processes: list[ManagedProcess] = []
        self._port = 0
        self._etcd_url = ""
        self._admin_credentials: tuple[str, str] = ("", "")
        self._apiserver_starts = 0
        self._kubeconfig_yaml = ""
        self._previous_handlers: dict[int, Any] = {}
        self._failed = False

    # -- what callers use -------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The API server's URL, ``https://127.0.0.1:PORT``."""
        self._require_started()
        return f"https://{LOOPBACK}:{self._port}"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig (admin, group system:masters) inside the work directory."""
        return self._require_started().kubeconfig

    @property
    def ca_certificate(self) -> Path:
        """The CA that signed the API server's certificate and the admin's client certificate."""
        return self._require_started().ca_certificate

    @property
    def work_dir(self) -> Path:
        return self._require_started().root

    @property
    def kubectl(self) -> Path:
        """The kubectl built from the same pin as the server."""
        return self.settings.controlplane_bin / "kubectl"

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(process.pid for process in self._processes)

    @property
    def running(self) -> bool:
        return bool(self._processes) and all(p.popen.poll() is None for p in self._processes)

    @property
    def etcd_url(self) -> str:
        """etcd's client URL, ``http://127.0.0.1:PORT`` (plain HTTP, loopback only)."""
        self._require_started()
        return self._etcd_url

    @property
    def apiserver_running(self) -> bool:
        """True while a kube-apiserver process of ours is alive (False between stop and start)."""
        process = self._apiserver()
        return process is not None and process.popen.poll() is None

    @property
    def apiserver_pid(self) -> int | None:
        process = self._apiserver()
        return process.pid if process is not None and process.popen.poll() is None else None

    def write_kubeconfig(self, path: Path) -> None:
        """Copy the kubeconfig to ``path`` (mode 0600: it holds the admin's private key)."""
        self._require_started()
        _write_private(path, self._kubeconfig_yaml)

    def write_client_kubeconfig(self, path: Path, *, user: str, groups: Sequence[str]) -> Path:
        """A kubeconfig for ``user`` in ``groups`` (a client certificate of the cluster's CA):
        components get their own identity, as a real cluster gives them, not the admin's."""
        self._require_started()
        if self._ca is None:
            raise ControlPlaneError("the control plane's CA is not made yet")
        pair = self._ca.issue_client(user, groups=tuple(groups))
        _write_private(path, self._client_kubeconfig(self._ca, pair))
        return path

    def check_running(self) -> None:
        """Raise :class:`ControlPlaneError` with the log tail if a server has exited."""
        for process in self._processes:
            if process.exited_on_its_own():
                self._failed = True
                raise ControlPlaneError(
                    f"{process.describe()}\nwork directory kept: {self.work_dir}"
                )

    def wait_while_running(self, *, poll: float = 1.0) -> NoReturn:
        """Block until a server exits, then raise :class:`ControlPlaneError` (for the CLI)."""
        while True:
            self.check_running()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._processes[-1].popen.wait(timeout=poll)

    # -- faults, for tests --------------------------------------------------------------------

    def stop_apiserver(self, *, kill: bool = False) -> None:
        """Stop kube-apiserver, leaving etcd running; ``kill`` sends SIGKILL (a crash) at once.

        Clients see connections refused until :meth:`start_apiserver`. Idempotent.
        """
        self._require_started()
        process = self._apiserver()
        if process is None or process.popen.poll() is not None:
            return
        if kill:
            process.stopping = True
            _signal_group(process.pid, signal.SIGKILL)
        process.stop(timeout=self.settings.stop_timeout)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port, etcd and PKI; return once it is ready.

        A no-op while it runs. Raises :class:`ControlPlaneError` (with the log tail) if it does
        not become ready within ``startup_timeout``.
        """
        files = self._require_started()
        if self.apiserver_running:
            return
        deadline = time.monotonic() + self.settings.startup_timeout
        for previous in [p for p in self._processes if p.name == "kube-apiserver"]:
            previous.stop(timeout=self.settings.stop_timeout)  # reaped, its log closed
            self._processes.remove(previous)
        self._launch_apiserver(files)
        self._wait_for_apiserver(deadline)

    def restart_apiserver(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        """Stop kube-apiserver, keep it down ``down_for`` seconds, start it; return when ready."""
        self.stop_apiserver(kill=kill)
        if down_for > 0:
            time.sleep(down_for)  # the outage itself, not a wait for state
        self.start_apiserver()

    def etcd_revision(self) -> int:
        """etcd's current revision (what every resourceVersion of this cluster counts in)."""
        answer = self._etcd_call("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
        return int(answer["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd so that every resourceVersion seen so far is gone; return the revision.

        An API server started with ``--watch-cache=false`` then answers a watch from any version
        a client holds with 410 Gone (``too old resource version``), so the client must list
        again. Two writes to a key outside ``/registry`` come first: compacting at exactly the
        current revision would leave a watch from the version before it half-valid (the API
        server answers 500, "PrevKv=nil", instead of 410). With the watch cache on, the cache
        still serves recent versions and compaction alone rarely shows.
        """
        key = base64.b64encode(COMPACTION_MARK_KEY).decode()
        revision = 0
        for step in (b"1", b"2"):
            value = base64.b64encode(step).decode()
            answer = self._etcd_call("/v3/kv/put", {"key": key, "value": value})
            revision = int(answer["header"]["revision"])
        self._etcd_call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def _etcd_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.etcd_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace").strip()
            raise ControlPlaneError(f"etcd {path}: HTTP {error.code} {detail}") from None
        except OSError as error:
            raise ControlPlaneError(f"etcd {path}: {error}") from None
        return answer

    def _apiserver(self) -> ManagedProcess | None:
        found = [p for p in self._processes if p.name == "kube-apiserver"]
        return found[-1] if found else None

    def __enter__(self) -> LocalControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start etcd, then kube-apiserver; return once /readyz answers ok."""
        if self._files is not None:
            raise ControlPlaneError("this control plane was already started")
        missing = [
            name for name in BINARIES if not (self.settings.controlplane_bin / name).is_file()
        ]
        if missing:
            raise ControlPlaneError(
                f"missing {', '.join(missing)} in {self.settings.controlplane_bin}: "
                "run `make controlplane` (or set MAMORI_CONTROLPLANE_BIN)"
            )
        parent = Path(self.settings.work_root or tempfile.gettempdir())
        remove_abandoned_work_dirs(parent)
        root = Path(tempfile.mkdtemp(prefix=WORK_DIR_PREFIX, dir=parent))
        self._files = ControlPlaneFiles(root)
        self._files.owner.write_text(f"{os.getpid()}\n")
        self._processes, self._failed = [], False
        atexit.register(self.stop)
        self._install_signal_handlers()
        try:
            self._start_servers(self._files)
        except ControlPlaneError as error:
            self._failed = True
            self.stop()
            raise ControlPlaneError(f"{error}\nwork directory kept: {root}") from None
        except BaseException:
            self._failed = not isinstance(sys.exc_info()[1], KeyboardInterrupt)
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the servers (API server first) and remove the work directory; idempotent."""
        files, self._files = self._files, None
        if files is None:
            return
        atexit.unregister(self.stop)
        self._restore_signal_handlers()
        crashed = [p for p in self._processes if p.exited_on_its_own()]
        for process in reversed(self._processes):
            process.stop(timeout=self.settings.stop_timeout)
        relays, self._relays = self._relays, []
        for relay in relays:
            relay.stop()
        if crashed or self._failed:
            shutil.rmtree(files.etcd_data, ignore_errors=True)
            files.owner.unlink(missing_ok=True)  # kept for reading: never swept
            print(f"mamori controlplane: logs kept in {files.root}", file=sys.stderr)
        elif self.settings.keep_work_dir:
            files.owner.unlink(missing_ok=True)
            print(f"mamori controlplane: work directory kept: {files.root}", file=sys.stderr)
        else:
            shutil.rmtree(files.root, ignore_errors=True)

    def _start_servers(self, files: ControlPlaneFiles) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout
        etcd_client, etcd_peer, self._port = _free_loopback_ports(3)
        if self.network is not None:  # the host's way in, on the same ports
            for port in (etcd_client, self._port):
                self._relays.append(LoopbackRelay(self.network.namespace, port).start())
        self._admin_credentials = self._write_pki(files)
        self._etcd_url = etcd_url = f"http://{LOOPBACK}:{etcd_client}"
        self._apiserver_starts = 0
        etcd = self._launch("etcd", self._etcd_argv(files, client=etcd_client, peer=etcd_peer))
        self._wait(
            deadline=deadline,
            what=f"etcd health at {etcd_url}/health",
            probe=lambda: _probe(f"{etcd_url}/health", context=None),
            processes=[etcd],
        )
        self._launch_apiserver(files)
        self._wait_for_apiserver(deadline)

    def _launch_apiserver(self, files: ControlPlaneFiles) -> ManagedProcess:
        """kube-apiserver.log for the first start, kube-apiserver-N.log for the N-th."""
        self._apiserver_starts += 1
        count = self._apiserver_starts
        log_name = "kube-apiserver" if count == 1 else f"kube-apiserver-{count}"
        argv = self._apiserver_argv(files, etcd_url=self._etcd_url)
        return self._launch("kube-apiserver", argv, log_name=log_name)

    def _wait_for_apiserver(self, deadline: float) -> None:
        files = self._require_started()
        context = ssl.create_default_context(cafile=str(files.ca_certificate))
        context.load_cert_chain(*self._admin_credentials)
        self._wait(
            deadline=deadline,
            what=f"kube-apiserver {self.server}/readyz",
            probe=lambda: _probe(f"{self.server}/readyz", context=context),
            processes=self._processes,
        )
        # The bootstrap controller creates the `default` namespace a moment after /readyz.
        self._wait(
            deadline=deadline,
            what="namespace default",
            probe=lambda: _probe(f"{self.server}/api/v1/namespaces/default", context=context),
            processes=self._processes,
        )

    def _write_pki(self, files: ControlPlaneFiles) -> tuple[str, str]:
        self._ca = ca = LocalCA("mamori-local-ca")
        files.ca_certificate.write_bytes(ca.certificate_pem)
        hosts: tuple[str, ...] = (LOOPBACK, "localhost")
        if self.network is not None:
            hosts += (self.network.advertise_address, *self.network.certificate_hosts)
        ca.issue_server("kube-apiserver", hosts=hosts).write(
            certificate=files.root / "apiserver.crt", key=files.root / "apiserver.key"
        )
        signing = generate_signing_key()
        (files.root / "service-account.pub").write_bytes(signing.public_pem)
        key_path = files.root / "service-account.key"
        key_path.touch(mode=0o600)
        key_path.write_bytes(signing.private_pem)
        admin = ca.issue_client("mamori-admin", groups=("system:masters",))
        admin_cert, admin_key = files.root / "admin.crt", files.root / "admin.key"
        admin.write(certificate=admin_cert, key=admin_key)
        self._kubeconfig_yaml = self._client_kubeconfig(ca, admin)
        _write_private(files.kubeconfig, self._kubeconfig_yaml)
        return str(admin_cert), str(admin_key)

    def _client_kubeconfig(self, ca: LocalCA, pair: KeyPair) -> str:
        return _kubeconfig_yaml(
            server=f"https://{LOOPBACK}:{self._port}",
            ca_pem=ca.certificate_pem,
            client_certificate_pem=pair.certificate_pem,
            client_key_pem=pair.key_pem,
        )

    def _etcd_argv(self, files: ControlPlaneFiles, *, client: int, peer: int) -> list[str]:
        client_url, peer_url = f"http://{LOOPBACK}:{client}", f"http://{LOOPBACK}:{peer}"
        return [
            str(self.settings.controlplane_bin / "etcd"),
            "--name=mamori",
            f"--data-dir={files.etcd_data}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=mamori={peer_url}",
            # A throwaway store: durability is not worth an fsync per write on a shared machine.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, files: ControlPlaneFiles, *, etcd_url: str) -> list[str]:
        advertise = LOOPBACK if self.network is None else self.network.advertise_address
        argv = [
            str(self.settings.controlplane_bin / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={LOOPBACK if self.network is None else '0.0.0.0'}",
            f"--advertise-address={advertise}",
            f"--secure-port={self._port}",
            f"--cert-dir={files.root / 'apiserver-certs'}",
            f"--tls-cert-file={files.root / 'apiserver.crt'}",
            f"--tls-private-key-file={files.root / 'apiserver.key'}",
            f"--client-ca-file={files.ca_certificate}",
            f"--service-account-issuer=https://{LOOPBACK}:{self._port}",
            f"--service-account-key-file={files.root / 'service-account.pub'}",
            f"--service-account-signing-key-file={files.root / 'service-account.key'}",
            f"--service-cluster-ip-range={self.settings.service_cluster_ip_range}",
            f"--authorization-mode={'RBAC' if self.network is None else 'Node,RBAC'}",
            "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook"
            + ("" if self.network is None else ",NodeRestriction"),
            # Privileged pods must reach admission webhooks, not be refused by validation first.
            "--allow-privileged=true",
            "--profiling=false",
        ]
        if not self.settings.service_account_admission:
            argv.append("--disable-admission-plugins=ServiceAccount")
        argv.extend(self.settings.apiserver_args)
        return argv

    def _launch(
        self, name: str, argv: Sequence[str], *, log_name: str | None = None
    ) -> ManagedProcess:
        files = self._require_started()
        if self.network is not None:
            argv = self.network.namespace.run_argv(argv)
        process = ManagedProcess(name=name, argv=argv, log_path=files.log(log_name or name))
        self._processes.append(process)
        return process

    def _wait(
        self,
        *,
        deadline: float,
        what: str,
        probe: Callable[[], str | None],
        processes: Sequence[ManagedProcess],
    ) -> None:
        """Poll ``probe`` (None = ready, else why not) until the deadline or a process exits."""
        while True:
            for process in processes:
                if process.popen.poll() is not None:
                    raise ControlPlaneError(f"waiting for {what}: {process.describe()}")
            problem = probe()
            if problem is None:
                return
            if time.monotonic() >= deadline:
                tails = "\n".join(p.describe() for p in processes)
                raise ControlPlaneError(
                    f"{what} not ready after {self.settings.startup_timeout:g}s "
                    f"(last answer: {problem})\n{tails}"
                )
            time.sleep(POLL_INTERVAL)

    def _require_started(self) -> ControlPlaneFiles:
        if self._files is None:
            raise ControlPlaneError("the control plane is not running (call start() first)")
        return self._files

    # -- interruption -----------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        """Turn SIGTERM/SIGHUP into KeyboardInterrupt so `finally` and fixtures still run.

        Only from the main thread, and only where nobody else installed a handler already.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                self._previous_handlers[signum] = signal.signal(signum, _interrupt)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous_handlers.items():
            if signal.getsignal(signum) is _interrupt:
                signal.signal(signum, previous)
        self._previous_handlers.clear()


def _interrupt(signum: int, frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def remove_abandoned_work_dirs(parent: Path) -> list[Path]:
    """Remove work directories whose owner died without cleaning up (SIGKILL, power loss).

    Only directories with an ``owner.pid`` naming a process that no longer exists: a live run's
    directory, and one kept after a failure (its owner file is removed), are left alone.
    """
    removed = []
    for candidate in parent.glob(f"{WORK_DIR_PREFIX}*"):
        try:
            owner = int((candidate / "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if not process_exists(owner):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kubeconfig_yaml(
    *, server: str, ca_pem: bytes, client_certificate_pem: bytes, client_key_pem: bytes
) -> str:
    """A self-contained kubeconfig: the credentials are inline, so the file can be copied."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": "mamori-admin",
                "user": {
                    "client-certificate-data": b64(client_certificate_pem),
                    "client-key-data": b64(client_key_pem),
                },
            }
        ],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {
                    "cluster": CONTEXT_NAME,
                    "user": "mamori-admin",
                    "namespace": "default",
                },
            }
        ],
        "current-context": CONTEXT_NAME,
    }
    return yaml.safe_dump(document, sort_keys=False)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only (a kubeconfig holds a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _probe(url: str, *, context: ssl.SSLContext | None) -> str | None:
    """GET ``url``: None when it answers 200, else a short reason for the error message."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace").strip().splitlines()
        failing = [line for line in body if line.startswith("[-]")]
        return f"HTTP {error.code} {'; '.join(failing) or (body[-1] if body else '')}"
    except (OSError, ssl.SSLError) as error:
        return f"{type(error).__name__}: {error}"


def _free_loopback_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; all held open at once so they differ."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]


def _child_environment() -> dict[str, str]:
    """Our environment minus ETCD_* (etcd reads every flag from there too)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("ETCD_")}


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _die_with_parent_hook() -> Callable[[], None] | None:
    """On Linux, have the kernel SIGKILL a server if this process dies without cleaning up.

    The kernel fires this when the *thread* that forked exits, so only the main thread uses it.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))

    return set_death_signal


# -- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a local etcd + kube-apiserver (built by `make controlplane`) until Ctrl-C, for "
        "trying mamori without a cluster. Every flag can also be set as MAMORI_<FLAG>."
    )
    parser.add_argument("action", nargs="?", choices=("up",), default="up", help="start it")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="PATH",
        help="also write the kubeconfig here (removed again on exit)",
    )
    add_settings_arguments(parser, ControlPlaneSettings)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(ControlPlaneSettings, args, os.environ)
    except SettingsError as error:
        print(f"mamori controlplane: error: {error}", file=sys.stderr)
        return 2
    kubeconfig: Path | None = args.kubeconfig
    if kubeconfig is not None and not _ours_to_overwrite(kubeconfig):
        print(
            f"mamori controlplane: error: --kubeconfig {kubeconfig} exists and is not a "
            f"{CONTEXT_NAME} kubeconfig; refusing to overwrite it",
            file=sys.stderr,
        )
        return 2
    control_plane = LocalControlPlane(settings)
    try:
        control_plane.start()
        if kubeconfig is not None:
            control_plane.write_kubeconfig(kubeconfig)
        shown = kubeconfig.resolve() if kubeconfig is not None else control_plane.kubeconfig
        print(
            f"kube-apiserver {control_plane.server} is ready (pids {control_plane.pids})\n"
            f"  export KUBECONFIG={shown}\n"
            f"  {control_plane.kubectl} get namespaces\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        control_plane.wait_while_running()
    except ControlPlaneError as error:
        print(f"mamori controlplane: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mamori controlplane: stopping", file=sys.stderr)
        return 130
    finally:
        control_plane.stop()
        if kubeconfig is not None:
            kubeconfig.unlink(missing_ok=True)


def _ours_to_overwrite(path: Path) -> bool:
    """A missing file, or one a previous run wrote (so a real ~/.kube/config is never lost)."""
    try:
        return f"current-context: {CONTEXT_NAME}" in path.read_text(errors="replace")
    except FileNotFoundError:
        return True
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mamori_dev.controlplane")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
