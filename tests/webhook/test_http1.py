"""The server front's pure half: request heads in, WSGI environs and response bytes out."""

from __future__ import annotations

from typing import Any

import pytest

from mamori_webhook.http1 import (
    BadRequest,
    call_app,
    error_response,
    parse_head,
    wsgi_environ,
)

REVIEW_HEAD = (
    b"POST /validate?timeout=10s HTTP/1.1\r\nHost: mamori.svc:443\r\n"
    b"Content-Type: application/json\r\nContent-Length: 12\r\nAccept: a\r\nAccept: b"
)


def test_a_review_head_becomes_a_wsgi_environ() -> None:
    head = parse_head(REVIEW_HEAD)
    assert (head.method, head.target, head.content_length) == ("POST", "/validate?timeout=10s", 12)
    assert head.keep_alive and not head.expects_continue
    environ = wsgi_environ(head, b'{"kind":"x"}', server=("0.0.0.0", 8443), peer=("10.0.0.1", 5))
    assert environ["PATH_INFO"] == "/validate"
    assert environ["QUERY_STRING"] == "timeout=10s"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "12"
    assert environ["HTTP_ACCEPT"] == "a,b"
    assert environ["REMOTE_ADDR"] == "10.0.0.1"
    assert environ["wsgi.input"].read() == b'{"kind":"x"}'


@pytest.mark.parametrize(
    ("head", "status"),
    [
        pytest.param(b"GARBAGE", 400, id="no-target"),
        pytest.param(b"POST  /validate HTTP/1.1", 400, id="double-space"),
        pytest.param(b"POST /validate HTTP/2.0", 505, id="http-2-line"),
        pytest.param(b"POST /validate HTTP/1.1\r\nNo colon", 400, id="header-without-colon"),
        pytest.param(b"POST /validate HTTP/1.1\r\n Folded: x", 400, id="obs-fold"),
        pytest.param(b"POST /validate HTTP/1.1\r\nContent-Length: -1", 400, id="negative-length"),
        pytest.param(b"POST /v HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400, id="2-cl"),
        pytest.param(b"POST /v HTTP/1.1\r\nTransfer-Encoding: chunked", 411, id="chunked"),
        pytest.param(b"GET / HTTP/1.1" + b"\r\nX: y" * 101, 431, id="too-many-headers"),
    ],
)
def test_malformed_heads_are_4xx_or_505(head: bytes, status: int) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_head(head)
    assert refused.value.status == status


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("HTTP/1.1", "", True),
        ("HTTP/1.1", "\r\nConnection: close", False),
        ("HTTP/1.0", "", False),
        ("HTTP/1.0", "\r\nConnection: Keep-Alive", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection_header(
    version: str, connection: str, keep_alive: bool
) -> None:
    assert parse_head(f"GET /readyz {version}{connection}".encode()).keep_alive is keep_alive


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    headers = [("Content-Type", "application/json")]
    if environ["PATH_INFO"] == "/close":
        headers.append(("Connection", "close"))
    start_response("400 BAD REQUEST", headers)
    return [b'{"error":', b'"x"}']


def test_an_app_answer_is_one_buffer_and_may_close_the_connection() -> None:
    environ = wsgi_environ(parse_head(b"GET /x HTTP/1.1"), b"", server=("h", 1), peer=None)
    response, keep_alive = call_app(app, environ, keep_alive=True)
    assert response == (
        b"HTTP/1.1 400 BAD REQUEST\r\nContent-Type: application/json\r\n"
        b'Content-Length: 13\r\n\r\n{"error":"x"}'
    )
    assert keep_alive is True
    environ["PATH_INFO"] = "/close"
    response, keep_alive = call_app(app, environ, keep_alive=True)
    assert keep_alive is False
    assert response.count(b"Connection: close") == 1


def test_the_fronts_own_errors_are_json() -> None:
    assert error_response(408, "late") == (
        b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        b'Content-Length: 16\r\nConnection: close\r\n\r\n{"error":"late"}'
    )
