"""A network namespace for a local cluster, and a loopback relay into it.

A cluster whose pods must reach the API server (and whose API server must reach pods through
Service ClusterIPs) cannot keep everything on the host's loopback, and must not listen on the
host's own addresses either. So the whole local cluster lives in a network namespace of its own:
its servers listen there, kube-proxy's rules and the pods' bridge are there, and deleting the
namespace takes all of that with it. The host reaches the API server (and etcd) through
:class:`LoopbackRelay`: a listener on the host's 127.0.0.1:PORT whose every connection is
dialled from inside the namespace to its own 127.0.0.1:PORT. A kubeconfig that names
``https://127.0.0.1:PORT`` therefore works both on the host and inside the namespace.

Dev tooling (tests, ``make cluster``), Linux only, root only.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 5.0


class NetnsError(RuntimeError):
    """A namespace could not be made, entered or removed."""


class NetworkNamespace:
    """A named network namespace (``ip netns``), with loopback up; removed by :meth:`delete`."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> NetworkNamespace:
        _run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        """Remove the namespace: its links, addresses, routes and firewall rules go with it.

        Processes still inside keep it alive until they exit; the caller stops them first.
        """
        if self.exists:
            _run(["ip", "netns", "delete", self.name])

    def ip(self, *args: str) -> str:
        """``ip -n NAME ARGS…``."""
        return _run(["ip", "-n", self.name, *args])

    def run_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace, and only the network namespace: the mount namespace
        stays the host's (``ip netns exec`` would give the process private mounts, which a
        kubelet and a containerd must share)."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def pids(self) -> list[int]:
        """Processes whose network namespace this is."""
        output = _run(["ip", "netns", "pids", self.name]) if self.exists else ""
        return [int(word) for word in output.split()]

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the calling *thread* inside the namespace (sockets made now stay in it)."""
        libc = _libc()
        home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise NetnsError(f"setns {self.name}: {os.strerror(ctypes.get_errno())}")
            try:
                yield
            finally:
                if libc.setns(home, CLONE_NEWNET) != 0:  # never leave a thread in there
                    raise NetnsError(f"setns back: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(target)
            os.close(home)

    def connect(self, port: int, *, host: str = LOOPBACK) -> socket.socket:
        """A TCP connection made from inside the namespace."""
        with self.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect((host, port))
            sock.settimeout(None)
        except OSError:
            sock.close()
            raise
        return sock


class LoopbackRelay:
    """Host 127.0.0.1:PORT -> the namespace's 127.0.0.1:PORT, one thread pair per connection."""

    def __init__(self, namespace: NetworkNamespace, port: int) -> None:
        self.namespace = namespace
        self.port = port
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> LoopbackRelay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((LOOPBACK, self.port))
        except OSError:
            listener.close()
            raise
        listener.listen(512)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        """Close the listener and every relayed connection; idempotent."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            open_sockets, self._sockets = list(self._sockets), set()
        for sock in open_sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(
            target=target,  # type: ignore[arg-type]
            args=args,
            name=f"relay-{self.port}",
            daemon=True,
        )
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while (listener := self._listener) is not None:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stop() shut the listener
            self._spawn(self._relay, client)

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = self.namespace.connect(self.port)
        except (OSError, NetnsError):
            _close(client)  # nothing listens in there (yet): the client sees a reset
            return
        for sock in (client, upstream):  # small TLS records must not wait for delayed ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._listener is None:
                _close(client)
                _close(upstream)
                return
            self._sockets.update((client, upstream))
        self._spawn(_pump, upstream, client)
        _pump(client, upstream)
        with self._lock:
            self._sockets.difference_update((client, upstream))


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once: the relay enters the namespace for every connection."""
    return ctypes.CDLL(None, use_errno=True)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until either side ends, then end both (a half-close is not needed by HTTP/TLS)."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _run(argv: Sequence[str]) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result.stdout
