"""What ``Kube`` puts on the wire and makes of the answer (mamori_operator/api/kube.py).

``Kube`` sends each call straight to the kubernetes client's urllib3 pool, not through the
generated client. These tests hold it to what the generated client did, against a loopback
server that records every request: the body encoded once (JSON, or bytes as they are), the
headers, the token asked of the configuration before every request (its refresh hook), the
server's Status in a ``KubeError``, urllib3's retries, the per-call timeout, and the TLS
settings of the configuration (CA, ``tls_server_name``, client certificate). The real API
server's side is tests/integration/test_kube_calls.py.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from mamori_dev.localca import LocalCA
from mamori_operator.api.kube import APPLY, JSON, MERGE, USER_AGENT, Kube, KubeError
from mamori_operator.metrics import Metrics

PATH = "/api/v1/namespaces/shop/configmaps"
STALL_SECONDS = 15.0  # how long a stalled answer waits: far beyond any timeout a test gives


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    client: str  # the client certificate's common name, "" without one


@dataclass
class Script:
    """How the loopback server answers: ``status`` with ``body``, a hang-up, or a stall."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = JSON
    hang_up: bool = False  # read the request, close the connection without answering
    stall: bool = False  # read the request, answer only after STALL_SECONDS
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def handler_for(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.seen.append(
                Seen(
                    method=self.command,
                    target=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    client=client_name(self.connection),
                )
            )
            if script.stall:
                script.release.wait(STALL_SECONDS)
            if script.hang_up:
                self.close_connection = True
                return
            try:
                self.send_response(script.status)
                self.send_header("Content-Type", script.content_type)
                self.send_header("Content-Length", str(len(script.body)))
                self.end_headers()
                self.wfile.write(script.body)
            except OSError:  # the client gave up (a stalled answer): nobody left to tell
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def client_name(connection: Any) -> str:
    """The common name of the client's certificate; "" over plain HTTP."""
    if not isinstance(connection, ssl.SSLSocket):
        return ""
    certificate: Any = connection.getpeercert() or {}
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


@dataclass
class Loopback:
    script: Script
    url: str


@contextlib.contextmanager
def serve(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[Loopback]:
    """A loopback HTTP(S) server answering by ``script``; stopped when the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(script))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield Loopback(script, f"{scheme}://127.0.0.1:{server.server_address[1]}")
    finally:
        script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    with serve(Script()) as server:
        yield server


@pytest.fixture
def made() -> Iterator[list[Kube]]:
    kubes: list[Kube] = []
    yield kubes
    for kube in kubes:
        kube.close()


def configuration(url: str) -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    configuration.host = url
    return configuration


def connect(made: list[Kube], config: kubernetes.client.Configuration, **kwargs: Any) -> Kube:
    kube = Kube(config, metrics=Metrics(), pool=1, **kwargs)
    made.append(kube)
    return kube


# -- what is sent ------------------------------------------------------------------------------

ANNOTATIONS = {"metadata": {"annotations": {"mamori.io/scan-status": "clean", "note": "é"}}}
YAML = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  key: value\n"


@pytest.mark.parametrize(
    ("body", "content_type", "sent"),
    [
        pytest.param(
            ANNOTATIONS,
            MERGE,
            b'{"metadata":{"annotations":{"mamori.io/scan-status":"clean","note":"\\u00e9"}}}',
            id="dict-as-compact-json",
        ),
        pytest.param(YAML, APPLY, YAML, id="bytes-as-they-are"),
        pytest.param(b'{"data":{"k":"v"}}', JSON, b'{"data":{"k":"v"}}', id="encoded-json"),
        pytest.param(
            {"spec": {"renewTime": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)}},
            JSON,
            b'{"spec":{"renewTime":"2026-01-02T03:04:05+00:00"}}',
            id="dates-in-iso-8601",
        ),
        pytest.param({}, JSON, b"{}", id="empty-object"),
        pytest.param(None, JSON, b"", id="no-body"),
    ],
)
def test_the_body_is_sent_encoded_once(
    loopback: Loopback, made: list[Kube], body: object, content_type: str, sent: bytes
) -> None:
    kube = connect(made, configuration(loopback.url))

    kube.request(
        "PATCH", f"{PATH}/app", resource="configmaps", body=body, content_type=content_type
    )

    (request,) = loopback.script.seen
    assert request.body == sent
    assert request.headers["content-type"] == content_type
    assert int(request.headers.get("content-length", "0")) == len(sent)


def test_the_url_headers_and_counter_are_those_of_the_generated_client(
    loopback: Loopback, made: list[Kube]
) -> None:
    kube = connect(made, configuration(loopback.url + "/prefix"))

    kube.apply(f"{PATH}/app", {"data": {}}, resource="configmaps", force=True)
    kube.request(
        "GET",
        PATH,
        resource="configmaps",
        query=[("labelSelector", "app in (a,b)"), ("limit", "2")],
    )

    apply, listing = loopback.script.seen
    assert (apply.method, apply.target) == (
        "PATCH",
        f"/prefix{PATH}/app?fieldManager=mamori&force=true",
    )
    assert listing.target == f"/prefix{PATH}?labelSelector=app+in+%28a%2Cb%29&limit=2"
    for request in (apply, listing):
        assert request.headers["accept"] == JSON
        assert request.headers["user-agent"] == kubernetes.client.ApiClient().user_agent
        assert "authorization" not in request.headers  # no token configured: none sent
    assert kubernetes.client.ApiClient().user_agent == USER_AGENT
    counted = kube.metrics.api_requests.labels(verb="patch", resource="configmaps")
    assert counted._value.get() == 1


# -- credentials -------------------------------------------------------------------------------


def test_the_token_is_asked_of_the_configuration_before_every_request(
    loopback: Loopback, made: list[Kube]
) -> None:
    """A refresh hook (the in-cluster loader's re-read of a rotated token file, an exec plugin's
    new token) changes the token between two calls: the second call carries the new one."""
    config = configuration(loopback.url)
    config.api_key = {"BearerToken": "token-0"}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    issued = iter(f"token-{n}" for n in range(1, 10))

    def rotate(config: kubernetes.client.Configuration) -> None:
        config.api_key["BearerToken"] = next(issued)

    config.refresh_api_key_hook = rotate
    kube = connect(made, config)

    kube.request("GET", PATH, resource="configmaps")
    kube.create(PATH, {"metadata": {"name": "app"}}, resource="configmaps")
    loopback.script.body = b'{"type":"ADDED","object":{}}\n{"type":"BOOKMARK","object":{}}\n'
    events = list(kube.watch(PATH, resource_version="5", timeout=60))

    sent = [request.headers.get("authorization") for request in loopback.script.seen]
    assert sent == ["Bearer token-1", "Bearer token-2", "Bearer token-3"]
    assert [event["type"] for event in events] == ["ADDED", "BOOKMARK"]


def tls_server(
    tmp_path: Path, hosts: tuple[str, ...] = ("127.0.0.1",)
) -> tuple[LocalCA, ssl.SSLContext, Path]:
    """A CA, a server context with its certificate for ``hosts``, and the CA file."""
    ca = LocalCA("kube-requests-test")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.certificate_pem)
    ca.issue_server("apiserver", hosts=hosts).write(
        certificate=tmp_path / "server.crt", key=tmp_path / "server.key"
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    return ca, tls, ca_file


def test_tls_uses_the_configurations_ca_server_name_and_client_certificate(
    tmp_path: Path, made: list[Kube]
) -> None:
    ca, tls, ca_file = tls_server(tmp_path, hosts=("apiserver.mamori.test",))
    ca.issue_client("mamori-operator").write(
        certificate=tmp_path / "client.crt", key=tmp_path / "client.key"
    )
    tls.load_verify_locations(ca_file)
    tls.verify_mode = ssl.CERT_REQUIRED  # a client without a certificate is turned away

    with serve(Script(), tls) as server:
        config = configuration(server.url)  # 127.0.0.1: not a name the certificate holds
        config.ssl_ca_cert = str(ca_file)
        config.cert_file, config.key_file = (
            str(tmp_path / "client.crt"),
            str(tmp_path / "client.key"),
        )
        config.retries = False
        with pytest.raises(KubeError) as refused:
            connect(made, config).request("GET", PATH, resource="configmaps")

        config.tls_server_name = "apiserver.mamori.test"
        assert connect(made, config).request("GET", PATH, resource="configmaps") == {}

        assert refused.value.reason == "Unreachable"
        assert "127.0.0.1" in refused.value.message  # a name the certificate does not hold
        assert [request.client for request in server.script.seen] == ["mamori-operator"]


@dataclass
class Relay:
    url: str
    asked: list[str]  # each request line the proxy read: CONNECT host:port, or an absolute URL


@contextlib.contextmanager
def forward_proxy() -> Iterator[Relay]:
    """A loopback HTTP proxy: tunnels CONNECT, forwards absolute-form requests; stopped when the
    block ends."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_CONNECT(self) -> None:  # the HTTP method's name
            asked.append(f"CONNECT {self.path}")
            host, _, port = self.path.rpartition(":")
            upstream = socket.create_connection((host, int(port)), timeout=5)
            self.send_response(200, "Connection established")
            self.end_headers()
            pipe(self.connection, upstream)
            self.close_connection = True

        def forward(self) -> None:
            asked.append(f"{self.command} {self.path}")
            target = urllib.parse.urlsplit(self.path)  # absolute form: http://host:port/path
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
            upstream.request(
                self.command,
                target.path + (f"?{target.query}" if target.query else ""),
                body=body,
                headers=dict(self.headers.items()),
            )
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            upstream.close()

        do_GET = do_PATCH = forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Relay(f"http://127.0.0.1:{server.server_address[1]}", asked)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def pipe(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [client, upstream]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 5)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)
    finally:
        upstream.close()


def test_an_https_server_behind_a_proxy_is_reached_through_a_connect_tunnel(
    tmp_path: Path, made: list[Kube]
) -> None:
    _, tls, ca_file = tls_server(tmp_path)
    with serve(Script(), tls) as server, forward_proxy() as proxy:
        config = configuration(server.url)
        config.ssl_ca_cert = str(ca_file)
        config.proxy = proxy.url
        kube = connect(made, config)
        kube.request("GET", PATH, resource="configmaps")
        kube.merge_patch(f"{PATH}/app", ANNOTATIONS, resource="configmaps")

        host = server.url.removeprefix("https://")
        assert proxy.asked == [f"CONNECT {host}"]  # one tunnel, kept for the second call
        assert [(seen.method, seen.target) for seen in server.script.seen] == [
            ("GET", PATH),
            ("PATCH", f"{PATH}/app?fieldManager=mamori"),
        ]


def test_a_plain_http_server_behind_a_proxy_gets_requests_in_absolute_form(
    made: list[Kube],
) -> None:
    with serve(Script()) as server, forward_proxy() as proxy:
        config = configuration(server.url)
        config.proxy = proxy.url
        connect(made, config).request("GET", PATH, resource="configmaps", query=[("limit", "1")])

        assert proxy.asked == [f"GET {server.url}{PATH}?limit=1"]
        assert [seen.target for seen in server.script.seen] == [f"{PATH}?limit=1"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_server_address_with_a_path_keeps_it_before_every_request(
    scheme: str, tmp_path: Path, made: list[Kube]
) -> None:
    _, tls, ca_file = tls_server(tmp_path)
    with serve(Script(), tls if scheme == "https" else None) as server:
        config = configuration(f"{server.url}/k8s/clusters/c-1/")
        config.ssl_ca_cert = str(ca_file)
        connect(made, config).request("GET", PATH, resource="configmaps", query=[("limit", "1")])

        assert [seen.target for seen in server.script.seen] == [f"/k8s/clusters/c-1{PATH}?limit=1"]


# -- what comes back ---------------------------------------------------------------------------


def status(reason: str, message: str) -> bytes:
    return json.dumps(
        {"kind": "Status", "status": "Failure", "reason": reason, "message": message}
    ).encode()


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        pytest.param(
            404,
            status("NotFound", 'configmaps "app" not found'),
            (404, "NotFound", 'configmaps "app" not found'),
            id="404-status",
        ),
        pytest.param(
            409,
            status("AlreadyExists", 'configmaps "app" already exists'),
            (409, "AlreadyExists", 'configmaps "app" already exists'),
            id="409-status",
        ),
        pytest.param(
            410,
            status("Expired", "too old resource version: 5 (90)"),
            (410, "Expired", "too old resource version: 5 (90)"),
            id="410-status",
        ),
        pytest.param(
            503,
            b"upstream unavailable",
            (503, "Service Unavailable", "upstream unavailable"),
            id="text-keeps-the-http-reason",
        ),
        pytest.param(502, b"[1]", (502, "Bad Gateway", "[1]"), id="json-that-is-no-status"),
        pytest.param(500, b"", (500, "Internal Server Error", ""), id="empty"),
    ],
)
def test_a_refusal_carries_the_servers_status(
    loopback: Loopback, made: list[Kube], code: int, body: bytes, expected: tuple[int, str, str]
) -> None:
    lost: list[bool] = []
    kube = connect(made, configuration(loopback.url), on_unreachable=lambda: lost.append(True))
    loopback.script.status, loopback.script.body = code, body

    with pytest.raises(KubeError) as refused:
        kube.create(PATH, {"metadata": {"name": "app"}}, resource="configmaps")

    error = refused.value
    assert (error.status, error.reason, error.message) == expected
    assert lost == []  # the server answered: the watches missed nothing


def test_not_found_is_none_for_get_and_false_for_delete(
    loopback: Loopback, made: list[Kube]
) -> None:
    kube = connect(made, configuration(loopback.url))
    loopback.script.status, loopback.script.body = 404, status("NotFound", "gone")

    assert kube.get(f"{PATH}/app", resource="configmaps") is None
    assert kube.delete(f"{PATH}/app", resource="configmaps") is False


# -- when the server does not answer ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "retries_disabled", "attempts"),
    [
        pytest.param("GET", False, 4, id="a-get-is-retried-three-times"),
        pytest.param("POST", False, 1, id="a-post-is-not-retried"),
        pytest.param("GET", True, 1, id="no-retries-once-disabled"),
    ],
)
def test_urllib3_retries_as_the_generated_client_did(
    loopback: Loopback, made: list[Kube], method: str, retries_disabled: bool, attempts: int
) -> None:
    lost: list[bool] = []
    kube = connect(made, configuration(loopback.url), on_unreachable=lambda: lost.append(True))
    if retries_disabled:
        kube.disable_client_retries()
    loopback.script.hang_up = True

    with pytest.raises(KubeError) as cut:
        kube.request(method, PATH, resource="configmaps", body=None)

    assert (cut.value.status, cut.value.reason) == (0, "Unreachable")
    assert len(loopback.script.seen) == attempts
    assert lost == [True]


def test_each_call_ends_at_its_own_timeout(loopback: Loopback, made: list[Kube]) -> None:
    kube = connect(made, configuration(loopback.url))
    kube.disable_client_retries()
    loopback.script.stall = True
    started = time.monotonic()

    with pytest.raises(KubeError) as late:
        kube.request("GET", PATH, resource="configmaps", timeout=0.5)

    assert late.value.reason == "Unreachable"
    assert time.monotonic() - started < STALL_SECONDS / 2
