"""HTTP/1.1 requests and responses as bytes: the pure half of the webhook's server front.

The front (:mod:`mamori_webhook.front`) buffers a whole request before any thread sees it, so it
needs a parser for the request head and a way to turn a WSGI answer into bytes; both live here,
free of sockets, so that a malformed request is a :class:`BadRequest` with a status and a reason
(an answer, never a 500) and can be tested as a pure function.

Deliberately narrow: what an API server (Go's net/http) and ordinary clients send. A body needs
``Content-Length``; ``Transfer-Encoding`` is refused with 411, which also closes the
request-smuggling door that a CL/TE pair would open.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# Where an app lists its direct routes (in ``app.extensions``), and what one is: the request's
# head, its whole body and the client's address in; a status line ("200 OK") and a JSON body
# out, or None to leave the request to the WSGI app.
DIRECT_ROUTES = "mamori.direct_routes"
DirectAnswer = tuple[str, bytes]
DirectRoute = Callable[["RequestHead", bytes, str], DirectAnswer | None]


class BadRequest(Exception):
    """A request the front answers itself, with ``status`` and a JSON ``{"error": reason}``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The parsed request line and headers (names lower-case, values latin-1 as WSGI wants)."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    content_length: int
    keep_alive: bool
    expects_continue: bool


def parse_head(head: bytes) -> RequestHead:
    """Parse a request head (without its final blank line); raise :class:`BadRequest`."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in VERSIONS:
        raise BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are served")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(431, f"more than {MAX_HEADERS} header fields")
    headers = []
    lengths = set()
    connection = b""
    expects_continue = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise BadRequest(400, "malformed header field")
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise BadRequest(400, "malformed Content-Length")
            lengths.add(int(value))
        elif name == b"transfer-encoding":
            raise BadRequest(411, "Transfer-Encoding is not accepted; send Content-Length")
        elif name == b"connection":
            connection = value.lower()
        elif name == b"expect" and value.lower() == b"100-continue":
            expects_continue = True
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    if len(lengths) > 1:
        raise BadRequest(400, "conflicting Content-Length fields")
    if version == b"HTTP/1.1":
        keep_alive = b"close" not in connection
    else:
        keep_alive = b"keep-alive" in connection
    return RequestHead(
        method=method.decode("ascii"),
        target=target.decode("latin-1"),
        version=version.decode("ascii"),
        headers=tuple(headers),
        content_length=lengths.pop() if lengths else 0,
        keep_alive=keep_alive,
        expects_continue=expects_continue,
    )


def wsgi_environ(
    head: RequestHead,
    body: bytes,
    *,
    server: tuple[str, int],
    peer: tuple[str, int] | None,
) -> dict[str, Any]:
    """The PEP 3333 environ for a whole request whose body is already in memory."""
    path, _, query = head.target.partition("?")
    if "://" in path:  # absolute-form target: keep the path only
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": head.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": head.version,
        "REMOTE_ADDR": peer[0] if peer else "",
        "REMOTE_PORT": str(peer[1]) if peer else "",
        "CONTENT_LENGTH": str(head.content_length),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        # The body is whole in memory (empty for one refused as too large): reading it to its
        # end is reading the request to its end.
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in head.headers:
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "content-length":
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def call_app(app: WsgiApp, environ: dict[str, Any], *, keep_alive: bool) -> tuple[bytes, bool]:
    """Run the WSGI app (in a request thread); return the whole response and whether to keep
    the connection (the app may ask to close it with ``Connection: close``)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda data: None  # the legacy write() callable; Flask never uses it

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    lines = [f"HTTP/1.1 {status}"]
    for name, value in headers:
        lowered = name.lower()
        if lowered == "connection":
            keep_alive = keep_alive and value.lower() != "close"
            continue
        if lowered in ("content-length", "transfer-encoding"):
            continue
        lines.append(f"{name}: {value}")
    head = response_head(lines, length=len(body), keep_alive=keep_alive)
    return head + body, keep_alive


def direct_routes(app: object) -> dict[tuple[str, str], DirectRoute]:
    """The (method, path) routes ``app`` answers without WSGI (none for most apps)."""
    extensions = getattr(app, "extensions", None)
    routes = extensions.get(DIRECT_ROUTES) if isinstance(extensions, dict) else None
    return dict(routes) if routes else {}


def request_path(head: RequestHead) -> str:
    """The path a direct route is looked up by: the target without its query (the API server
    sends ``/validate?timeout=10s``). Anything unusual (escapes, an absolute-form target) stays
    as it is, matches no route, and goes to the WSGI app."""
    return head.target.partition("?")[0]


def header(head: RequestHead, name: str) -> str:
    """The last value of header ``name`` (lower-case), as the WSGI environ would carry it."""
    found = ""
    for field, value in head.headers:
        if field == name:
            found = value
    return found


def json_answer(status: str, body: bytes, *, keep_alive: bool) -> bytes:
    """A direct route's answer as bytes: the head Flask's JSON ``Response`` gets from
    :func:`call_app`, byte for byte."""
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json"]
    return response_head(lines, length=len(body), keep_alive=keep_alive) + body


def error_response(status: int, reason: str, *, keep_alive: bool = False) -> bytes:
    """A JSON error answer written by the front itself, in the app's ``{"error": …}`` form."""
    body = orjson.dumps({"error": reason})
    phrase = HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}", "Content-Type: application/json"]
    return response_head(lines, length=len(body), keep_alive=keep_alive) + body


def response_head(lines: list[str], *, length: int, keep_alive: bool) -> bytes:
    lines.append(f"Content-Length: {length}")
    if not keep_alive:
        lines.append("Connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")
