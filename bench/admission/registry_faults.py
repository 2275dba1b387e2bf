"""Registries that misbehave, on loopback, for the signature benchmark's deadline figures.

* :func:`silent_server`: accepts TCP connections and never sends a byte (a hung registry);
* :func:`delayed_proxy`: a TCP relay to a real registry that holds each new connection
  ``delay`` seconds before relaying it (a slow registry: every call answers, late). TLS passes
  through untouched, so the registry's certificate for 127.0.0.1 still verifies. With a
  :class:`RelayTraffic` it also counts what passes (delay 0: a counting relay, for the served
  benchmark's "how often was the registry asked").

Both are context managers that close every socket and join their threads on the way out.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial

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


ALERT_MAX = 31  # bytes: a TLS 1.3 alert record (close_notify) is 24
FINISHED_MAX = 100  # bytes: a client's ChangeCipherSpec + Finished alone is about 60
BURST_WINDOW = 0.1  # seconds: requests this close together count as one burst


@dataclass
class Flight:
    """One run of client-to-registry bytes on a connection between two answers from it."""

    at: float  # monotonic seconds when its first byte passed
    ordinal: int  # 1: the connection's first flight
    size: int = 0

    @property
    def request(self) -> bool:
        """An HTTP request, not the TLS handshake (ClientHello, then Finished) nor an alert;
        a request sent with the Finished counts as a request."""
        if self.ordinal == 1 or self.size <= ALERT_MAX:
            return False
        return not (self.ordinal == 2 and self.size <= FINISHED_MAX)


@dataclass
class _Connection:
    up: bool = False  # the client speaks first: its first bytes start a flight
    flight: Flight | None = None
    flights: int = 0


@dataclass(frozen=True)
class TrafficMark:
    connections: int
    flights: int
    bytes_up: int
    bytes_down: int


@dataclass
class RelayTraffic:
    """What passed a relay. The relay sees TLS records, not HTTP: requests are told from the
    handshake and from alerts by their place on the connection and their size (:class:`Flight`).
    On a kept connection (one request at a time) each request is one flight."""

    connections: int = 0
    flights: list[Flight] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def mark(self) -> TrafficMark:
        with self._lock:
            return TrafficMark(self.connections, len(self.flights), self.bytes_up, self.bytes_down)

    def since(self, mark: TrafficMark) -> dict[str, int]:
        """Connections opened, requests, the most requests within BURST_WINDOW of each other,
        client flights and bytes each way since ``mark``."""
        with self._lock:
            flights = self.flights[mark.flights :]
            counts = {
                "connections": self.connections - mark.connections,
                "bytes_up": self.bytes_up - mark.bytes_up,
                "bytes_down": self.bytes_down - mark.bytes_down,
            }
        times = sorted(flight.at for flight in flights if flight.request)
        burst = max(
            (sum(1 for later in times[i:] if later - first < BURST_WINDOW) for i, first in
             enumerate(times)),
            default=0,
        )  # fmt: skip
        return counts | {"requests": len(times), "largest_burst": burst, "flights": len(flights)}

    def opened(self) -> _Connection:
        with self._lock:
            self.connections += 1
        return _Connection()

    def passed(self, connection: _Connection, *, up: bool, size: int) -> None:
        """``size`` bytes went up (client to registry) or down on ``connection``."""
        with self._lock:
            if not up:
                self.bytes_down += size
                connection.up = False
                return
            self.bytes_up += size
            if not connection.up or connection.flight is None:
                connection.flights += 1
                connection.flight = Flight(time.monotonic(), connection.flights)
                self.flights.append(connection.flight)
            connection.flight.size += size
            connection.up = True


@contextmanager
def delayed_proxy(
    upstream_port: int, delay: float, *, traffic: RelayTraffic | None = None
) -> Iterator[int]:
    """A loopback port relaying to ``upstream_port`` after holding each connection ``delay``
    seconds; yields the port. ``traffic``: counted there as it passes."""
    listener = _Listener()

    def pump(
        source: socket.socket, sink: socket.socket, counted: _Connection | None, *, up: bool
    ) -> None:
        try:
            while data := source.recv(RELAY_CHUNK):
                if traffic is not None and counted is not None:
                    traffic.passed(counted, up=up, size=len(data))
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
        counted = traffic.opened() if traffic is not None else None
        listener.spawn(partial(pump, upstream, client, counted, up=False))
        pump(client, upstream, counted, up=True)

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
