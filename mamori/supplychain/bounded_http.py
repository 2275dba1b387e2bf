"""HTTPS requests under one hard deadline and a size bound per response (http.client, ssl).

http.client's own timeout applies to each socket operation, so a server that sends one byte
just before each timeout keeps a caller waiting forever. Here the caller's deadline covers the
connect, the TLS handshake and every read: each read gets only the time that is left, and stops
with TimeoutError when none is. Each response may be at most ``limit`` bytes, status line and
headers included. Name resolution (getaddrinfo) is the one step the deadline cannot stop.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

USER_AGENT = "mamori-registry-client"


class Deadline:
    """The end of one call, on the caller's clock."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
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
    ) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self._left = limit
        self._on_close = on_close

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
        return count


class TooLarge(Exception):
    """A response went past max_response_bytes."""


class BoundedSocket:
    """The part of a socket that http.client uses, with every read bounded."""

    def __init__(self, sock: socket.socket, deadline: Deadline, limit: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._limit = limit
        self._readers = 0
        self._closed = False

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.remaining())
        self._sock.sendall(data)

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        # One reader per response: the size bound applies to each response on its own.
        self._readers += 1
        reader = BoundedReader(
            self._sock, self._deadline, self._limit, on_close=self._reader_closed
        )
        return io.BufferedReader(reader)

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
    """HTTPS to one registry host, every step under one deadline."""

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
