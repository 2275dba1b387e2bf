"""HTTPS requests under one hard deadline and a size bound per response (http.client, ssl).

http.client's own timeout applies to each socket operation, so a server that sends one byte
just before each timeout keeps a caller waiting forever. Here the caller's deadline covers the
connect, the TLS handshake and every read: each read gets only the time that is left, and stops
with TimeoutError when none is. Each response may be at most ``limit`` bytes, status line and
headers included. Name resolution (getaddrinfo) is the one step the deadline cannot stop.

A new connection costs a TCP and a TLS handshake, several times the cost of a request on an
open one, and a signature check makes a dozen requests to one registry. :class:`ConnectionPool`
keeps a few idle connections per (host, port) for the next request; the deadline and the size
bound are set again for each request (:meth:`Connection.arm`), so a kept connection is bounded
exactly as a new one. Only a connection whose response was read to its end, that the server did
not mark ``Connection: close`` and that met no error is kept.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

USER_AGENT = "mamori-registry-client"


class Deadline:
    """The end of one call, on the caller's clock."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        left = self._end - self._clock()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left


class BoundedReader(io.RawIOBase):
    """Socket reads under the call's deadline and the response's size bound."""

    def __init__(
        self,
        sock: socket.socket,
        deadline: Deadline,
        limit: int,
        on_close: Callable[[], None] = lambda: None,
        on_read: Callable[[int], None] = lambda count: None,
    ) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self._left = limit
        self._on_close = on_close
        self._on_read = on_read

    def close(self) -> None:
        if not self.closed:
            self._on_close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise TooLarge
        self._sock.settimeout(self._deadline.remaining())
        view = memoryview(buffer)[: self._left]
        count = self._sock.recv_into(view)
        self._left -= count
        self._on_read(count)
        return count


class TooLarge(Exception):
    """A response went past max_response_bytes."""


class BoundedSocket:
    """The part of a socket that http.client uses, with every read bounded.

    The deadline and the size bound are those of the request under way: :meth:`arm` sets them
    before each request on a kept connection, and each response's reader takes them when
    http.client opens it. ``received`` counts the bytes read since the last :meth:`arm`.
    """

    def __init__(self, sock: socket.socket, deadline: Deadline, limit: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._limit = limit
        self._readers = 0
        self._closed = False
        self.received = 0

    def arm(self, deadline: Deadline, limit: int) -> None:
        self._deadline = deadline
        self._limit = limit
        self.received = 0

    def idle_and_open(self) -> bool:
        """True when nothing waits to be read: a server that closed a kept connection (or sent
        what nobody asked for) makes it readable, and such a connection is not used again."""
        if self._closed or self._readers:
            return False
        try:
            if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
                return False
            # poll, not select: a busy process may hold descriptors past select's 1024.
            poller = select.poll()
            poller.register(self._sock, select.POLLIN | select.POLLPRI)
            return not poller.poll(0)  # any event (data, EOF, hang-up, error): not idle
        except (OSError, ValueError):
            return False

    def abort(self) -> None:
        """Close now, whatever reader is still open: the connection is not to be read again."""
        self._closed = True
        self._sock.close()

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.remaining())
        self._sock.sendall(data)

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        # One reader per response: the size bound applies to each response on its own.
        self._readers += 1
        reader = BoundedReader(
            self._sock,
            self._deadline,
            self._limit,
            on_close=self._reader_closed,
            on_read=self._count,
        )
        return io.BufferedReader(reader)

    def _count(self, count: int) -> None:
        self.received += count

    def close(self) -> None:
        # http.client closes the connection before it reads the body of a response that ends
        # the connection (HTTP/1.0, Connection: close); as with socket.makefile, the socket
        # stays open until the response's reader is closed too.
        self._closed = True
        if self._readers == 0:
            self._sock.close()

    def _reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers == 0:
            self._sock.close()


class Connection(http.client.HTTPConnection):
    """HTTPS to one registry host, every step of each request under that request's deadline."""

    default_port = 443  # the Host header omits :443, as for https URLs

    def __init__(
        self, host: str, port: int, *, context: ssl.SSLContext, deadline: Deadline, limit: int
    ) -> None:
        super().__init__(host, port)
        self._context = context
        self._deadline = deadline
        self._limit = limit

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self._deadline.remaining())
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(self._deadline.remaining())  # bounds the whole handshake
            tls = self._context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
        self.sock = BoundedSocket(tls, self._deadline, self._limit)

    def arm(self, deadline: Deadline, limit: int) -> None:
        """The deadline and size bound of the next request (and of a connect it may need)."""
        self._deadline = deadline
        self._limit = limit
        if isinstance(self.sock, BoundedSocket):
            self.sock.arm(deadline, limit)

    @property
    def received(self) -> int:
        """Bytes of a response read since the last :meth:`arm` (0: the server sent nothing)."""
        return self.sock.received if isinstance(self.sock, BoundedSocket) else 0

    def reusable(self) -> bool:
        """Open, its last response read to the end, not to be closed, nothing unread."""
        return isinstance(self.sock, BoundedSocket) and self.sock.idle_and_open()

    def discard(self) -> None:
        if isinstance(self.sock, BoundedSocket):
            self.sock.abort()
        self.close()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def request(connection: Connection, method: str, target: str, headers: Mapping[str, str]) -> Answer:
    """One request on ``connection``; the whole response read (HEAD: no body)."""
    connection.request(method, target, headers={"User-Agent": USER_AGENT, **headers})
    response = connection.getresponse()
    body = response.read()
    return Answer(response.status, response.headers, body)


Endpoint = tuple[str, int]
# Requests that change nothing on the server: one of them may be sent again on a new connection
# when a kept one turns out closed before the first byte of its answer.
RETRYABLE_METHODS: frozenset[str] = frozenset({"GET", "HEAD"})
# What a kept connection that the server closed while idle fails with, before any answer.
STALE_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, ssl.SSLEOFError)


class ConnectionPool:
    """Idle connections kept per (host, port), at most ``per_endpoint`` each, for ``idle_for``
    seconds; shared by threads, each connection used by one request at a time.

    Idle connections past their time are closed whenever the pool is next used; at most
    ``max_endpoints`` endpoints keep any (the least recently used lose theirs). A connection
    is opened by :meth:`exchange` and returned to the pool only when it can be used again.
    ``per_endpoint=0`` keeps nothing: one connection per request.
    """

    def __init__(
        self,
        *,
        context: ssl.SSLContext,
        per_endpoint: int = 4,
        idle_for: float = 30.0,
        max_endpoints: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = context
        self._per_endpoint = per_endpoint
        self._idle_for = idle_for
        self._max_endpoints = max_endpoints
        self._clock = clock
        self._idle: OrderedDict[Endpoint, list[tuple[Connection, float]]] = OrderedDict()
        self._lock = threading.Lock()

    def exchange(
        self,
        endpoint: Endpoint,
        method: str,
        target: str,
        headers: Mapping[str, str],
        *,
        deadline: Deadline,
        limit: int,
        send: Callable[[Connection, str, str, Mapping[str, str]], Answer] = request,
    ) -> Answer:
        """One request to ``endpoint`` under ``deadline``, on a kept connection if one is idle.

        A GET or HEAD on a kept connection that fails before a single byte of its answer (the
        server closed it while idle) is sent once more on a new connection: nothing of it was
        answered, and it changes nothing. Any other failure is raised, and the connection that
        met it is closed. ``send`` does the request itself (the registry client passes its
        own name for :func:`request`, which the wire benchmark counts).
        """
        connection = self._take(endpoint)
        if connection is not None:
            connection.arm(deadline, limit)
            try:
                return self._finish(endpoint, connection, send, method, target, headers)
            except STALE_ERRORS:
                if connection.received or method not in RETRYABLE_METHODS:
                    raise
        connection = Connection(
            endpoint[0], endpoint[1], context=self._context, deadline=deadline, limit=limit
        )
        return self._finish(endpoint, connection, send, method, target, headers)

    def _finish(
        self,
        endpoint: Endpoint,
        connection: Connection,
        send: Callable[[Connection, str, str, Mapping[str, str]], Answer],
        method: str,
        target: str,
        headers: Mapping[str, str],
    ) -> Answer:
        try:
            answer = send(connection, method, target, headers)
        except BaseException:
            connection.discard()
            raise
        self._give_back(endpoint, connection)
        return answer

    def _take(self, endpoint: Endpoint) -> Connection | None:
        stale: list[Connection] = []
        found = None
        with self._lock:
            stale.extend(self._expire())
            idle = self._idle.get(endpoint)
            while idle:
                connection, _ = idle.pop()  # the most recently used: the least likely closed
                if connection.reusable():
                    found = connection
                    break
                stale.append(connection)
        for connection in stale:
            connection.discard()
        return found

    def _give_back(self, endpoint: Endpoint, connection: Connection) -> None:
        if self._per_endpoint <= 0 or not connection.reusable():
            connection.discard()
            return
        stale: list[Connection] = []
        with self._lock:
            idle = self._idle.setdefault(endpoint, [])
            self._idle.move_to_end(endpoint)
            idle.append((connection, self._clock()))
            while len(idle) > self._per_endpoint:
                stale.append(idle.pop(0)[0])
            while len(self._idle) > self._max_endpoints:
                _, dropped = self._idle.popitem(last=False)
                stale.extend(kept for kept, _ in dropped)
        for kept in stale:
            kept.discard()

    def _expire(self) -> list[Connection]:
        """Remove and return the connections idle for too long (called with the lock held)."""
        oldest_kept = self._clock() - self._idle_for
        expired: list[Connection] = []
        for endpoint in list(self._idle):
            idle = self._idle[endpoint]
            expired.extend(connection for connection, since in idle if since <= oldest_kept)
            idle[:] = [(connection, since) for connection, since in idle if since > oldest_kept]
            if not idle:
                del self._idle[endpoint]
        return expired

    def idle_count(self, endpoint: Endpoint | None = None) -> int:
        with self._lock:
            if endpoint is not None:
                return len(self._idle.get(endpoint, ()))
            return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """Close every idle connection (a request under way keeps its own)."""
        with self._lock:
            idle = [connection for kept in self._idle.values() for connection, _ in kept]
            self._idle.clear()
        for connection in idle:
            connection.discard()
