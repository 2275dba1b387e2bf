"""Registries that misbehave, on loopback, for the signature benchmark's deadline figures.

* :func:`silent_server`: accepts TCP connections and never sends a byte (a hung registry);
* :func:`delayed_proxy`: a TCP relay to a real registry that holds each new connection
  ``delay`` seconds before relaying it (a slow registry: every call answers, late). TLS passes
  through untouched, so the registry's certificate for 127.0.0.1 still verifies.

Both are context managers that close every socket and join their threads on the way out.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

ACCEPT_POLL = 0.1
RELAY_CHUNK = 65536


class _Listener:
    """A loopback listener whose accepted connections are handed to ``serve`` in a thread."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.socket.settimeout(ACCEPT_POLL)
        self.stopping = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def keep(self, sock: socket.socket) -> None:
        with self._lock:
            self.sockets.append(sock)

    def spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self.threads.append(thread)
        thread.start()

    def accepted(self) -> Iterator[socket.socket]:
        while not self.stopping.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.keep(connection)
            yield connection

    def close(self) -> None:
        self.stopping.set()
        self.socket.close()
        with self._lock:
            sockets, threads = list(self.sockets), list(self.threads)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(5)
        with self._lock:
            late = self.sockets[len(sockets) :]
        for sock in late:  # opened by a relay while the first ones were closing
            sock.close()


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers; yields the port."""
    listener = _Listener()
    accepting = threading.Thread(target=lambda: list(listener.accepted()), daemon=True)
    accepting.start()
    try:
        yield listener.port
    finally:
        listener.close()
        accepting.join(5)


@contextmanager
def delayed_proxy(upstream_port: int, delay: float) -> Iterator[int]:
    """A loopback port relaying to ``upstream_port`` after holding each connection ``delay``
    seconds; yields the port."""
    listener = _Listener()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(RELAY_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def relay(client: socket.socket) -> None:
        if listener.stopping.wait(delay):
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        listener.keep(upstream)
        listener.spawn(pump, upstream, client)
        pump(client, upstream)

    def accept() -> None:
        for client in listener.accepted():
            listener.spawn(relay, client)

    accepting = threading.Thread(target=accept, daemon=True)
    accepting.start()
    try:
        yield listener.port
    finally:
        listener.close()
        accepting.join(5)
