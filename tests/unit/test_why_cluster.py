"""``why``'s reads (mamori/why/cluster.py): the API server's refusals become messages, a silent
server a timeout, and a loopback server is never reached through a proxy, as with kubectl.

A plain-HTTP server on loopback stands in for the API server (the real one, over TLS with
client certificates and exec tokens, is in tests/integration/test_kubectl_plugin.py).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mamori.why.cluster import Cluster, ClusterError, NotFound

ANSWERS = {
    "/ok": (200, {"kind": "Namespace", "metadata": {"name": "shop"}}),
    "/forbidden": (403, {"kind": "Status", "message": 'namespaces "shop" is forbidden: no'}),
    "/missing": (404, {"kind": "Status", "message": 'namespaces "shop" not found'}),
    "/list": (200, ["not", "an", "object"]),
}


class FakeApiServer(BaseHTTPRequestHandler):
    seen: list[Message] = []

    def do_GET(self) -> None:
        FakeApiServer.seen.append(self.headers)  # names compare case-insensitively
        status, body = ANSWERS[self.path]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def cluster(server: str, *, timeout: float = 10.0) -> Cluster:
    return Cluster(
        server,
        tls=ssl.create_default_context(),
        auth_headers=lambda: {"authorization": "Bearer t0ken"},
        timeout=timeout,
        default_namespace="default",
    )


def test_a_read_sends_the_credentials_and_returns_the_object(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that does not exist: a loopback server must be reached directly all the same.
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    FakeApiServer.seen.clear()
    assert cluster(server).get("/ok")["metadata"] == {"name": "shop"}
    [headers] = FakeApiServer.seen
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["User-Agent"].startswith("kubectl-mamori/")


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        pytest.param(
            "/forbidden", ClusterError, 'HTTP 403: namespaces "shop" is forbidden: no', id="403"
        ),
        pytest.param("/missing", NotFound, 'HTTP 404: namespaces "shop" not found', id="404"),
        pytest.param("/list", ClusterError, "is not a JSON object", id="not-an-object"),
    ],
)
def test_refusals_carry_the_api_servers_message(
    server: str, path: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        cluster(server).get(path)
    assert message in str(raised.value)
    if error is ClusterError:
        assert not isinstance(raised.value, NotFound)


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(
            ClusterError, match=re.escape(f"cannot reach the API server at {server}: ")
        ):
            cluster(server, timeout=0.5).get("/ok")


def test_nothing_listening_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        ClusterError, match=re.escape("cannot reach the API server at http://127.0.0.1")
    ):
        cluster(f"http://127.0.0.1:{port}").get("/ok")
