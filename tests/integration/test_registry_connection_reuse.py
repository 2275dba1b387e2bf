"""Kept registry connections: one TLS connection for a review's requests, bounded as a new one.

An uncached signature check makes a dozen requests to one registry, one after another; each on
a new connection paid a TCP and a TLS handshake. The client now keeps a few idle connections per
endpoint. What must not change: every request on a kept connection has its own deadline and
size bound; a connection whose answer was cut, hung, oversize or marked ``Connection: close``
is never used again; a connection the server closed while idle is replaced without the caller
seeing it, and a request is sent twice only when it is a GET or HEAD whose first sending got
not one byte of answer. Also here: a registry without the referrers API is asked once per TTL.

Servers are loopback TLS sockets opened by the tests, counting the connections they accept,
and stopped by them even on failure.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mamori.images import parse_reference
from mamori.supplychain.registry import (
    CACHE_KEYS_MAX,
    WHO_MAX,
    Credentials,
    RegistryClient,
    RegistryClientConfig,
    RegistryError,
    RegistryTimeout,
    ResponseTooLarge,
)
from tests.helpers import wait_for
from tests.integration.registry_support import write_loopback_certificate

pytestmark = pytest.mark.integration

BODY = b'{"schemaVersion": 2, "manifests": []}'
BODY_DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()
HUGE = b"x" * 8192
LIMIT = 4096
DEADLINE = 0.6
REFERRERS_TTL = 600.0


class Scripted(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; each request takes the next action of the server's script ("ok"
    when it is empty): ok, close (Connection: close), close-silently (answer, then close
    without saying so), hang, drop (close without answering), cut (half a status line), huge,
    404."""

    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_HEAD(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        server = self.server
        with server.lock:
            server.seen.append((self.command, self.path))
            action = server.script.pop(0) if server.script else "ok"
        if action == "hang":
            server.release.wait()
            self.close_connection = True
            return
        if action in ("drop", "cut"):
            if action == "cut":
                self.wfile.write(b"HTTP/1.1 20")
            self.close_connection = True
            return
        body = HUGE if action == "huge" else BODY
        self.send_response(404 if action == "404" else 200)
        self.send_header("Docker-Content-Digest", BODY_DIGEST)
        self.send_header("Content-Length", str(len(body)))
        if action == "close":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)
        if action == "close-silently":
            self.close_connection = True


class ScriptedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), Scripted)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.script: list[str] = []
        self.seen: list[tuple[str, str]] = []
        self.accepted = 0
        self.closed = 0

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], address: object
    ) -> None:
        with self.lock:
            self.accepted += 1
        super().process_request(request, address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        super().shutdown_request(request)
        with self.lock:
            self.closed += 1

    def image(self, repository: str = "team/app") -> str:
        return f"127.0.0.1:{self.server_port}/{repository}:v1"


class OffsetClock:
    """Monotonic time that a test moves forward (each call's deadline stays real)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return write_loopback_certificate(tmp_path)


@pytest.fixture
def server(certificate: tuple[Path, Path]) -> Iterator[ScriptedServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    scripted = ScriptedServer(context)
    thread = threading.Thread(target=scripted.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield scripted
    finally:
        scripted.release.set()
        scripted.shutdown()
        scripted.server_close()
        thread.join(timeout=5)


@pytest.fixture
def clock() -> OffsetClock:
    return OffsetClock()


def make_client(
    certificate: tuple[Path, Path], clock: OffsetClock, *, deadline: float = DEADLINE
) -> RegistryClient:
    config = RegistryClientConfig(
        ssl_context=ssl.create_default_context(cafile=str(certificate[0])),
        deadline=deadline,
        max_response_bytes=LIMIT,
        cache_ttl=0,  # every resolve goes to the wire
        referrers_memo_ttl=REFERRERS_TTL,
    )
    return RegistryClient(config, clock=clock)


@pytest.fixture
def client(certificate: tuple[Path, Path], clock: OffsetClock) -> Iterator[RegistryClient]:
    registry_client = make_client(certificate, clock)
    try:
        yield registry_client
    finally:
        registry_client.close()


def blob(client: RegistryClient, server: ScriptedServer) -> bytes | None:
    fetched = client.get_blob(parse_reference(server.image()), BODY_DIGEST)
    return None if fetched is None else fetched.body


def test_consecutive_requests_share_one_connection(
    client: RegistryClient, server: ScriptedServer
) -> None:
    for _ in range(5):
        assert client.resolve(server.image()).digest == BODY_DIGEST
        assert blob(client, server) == BODY
    assert len(server.seen) == 10
    assert server.accepted == 1
    assert client.pool.idle_count() == 1


def test_threads_each_get_a_connection_and_at_most_four_stay_idle(
    certificate: tuple[Path, Path], clock: OffsetClock, server: ScriptedServer
) -> None:
    # A generous deadline: the test server does the TLS handshakes one after another.
    client = make_client(certificate, clock, deadline=10.0)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                assert blob(client, server) == BODY
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert len(server.seen) == 40
        assert server.accepted <= 8
        assert client.pool.idle_count() <= 4
    finally:
        client.close()


def test_a_hung_answer_on_a_kept_connection_times_out_at_its_deadline_and_is_dropped(
    client: RegistryClient, server: ScriptedServer
) -> None:
    server.script[:] = ["ok", "hang"]
    assert blob(client, server) == BODY
    started = time.monotonic()
    with pytest.raises(RegistryTimeout):
        blob(client, server)
    elapsed = time.monotonic() - started
    assert DEADLINE - 0.05 <= elapsed < DEADLINE + 0.5
    assert client.pool.idle_count() == 0
    assert blob(client, server) == BODY
    assert server.accepted == 2
    assert len(server.seen) == 3  # the hung request was not sent again


def test_an_oversize_answer_on_a_kept_connection_is_refused_and_the_connection_dropped(
    client: RegistryClient, server: ScriptedServer
) -> None:
    server.script[:] = ["ok", "huge"]
    assert blob(client, server) == BODY
    with pytest.raises(ResponseTooLarge):
        blob(client, server)
    assert client.pool.idle_count() == 0
    assert blob(client, server) == BODY
    assert server.accepted == 2


def test_connection_close_is_honoured(client: RegistryClient, server: ScriptedServer) -> None:
    server.script[:] = ["close", "close", "close"]
    for _ in range(3):
        assert blob(client, server) == BODY
        assert client.pool.idle_count() == 0
    assert server.accepted == 3


def test_a_connection_the_server_closed_while_idle_is_replaced_without_resending(
    client: RegistryClient, server: ScriptedServer
) -> None:
    server.script[:] = ["close-silently"]
    assert blob(client, server) == BODY
    wait_for(lambda: server.closed == 1, timeout=5, interval=0.01)
    assert blob(client, server) == BODY
    assert server.accepted == 2
    assert len(server.seen) == 2


def test_a_get_dropped_unanswered_on_a_kept_connection_is_sent_once_more_on_a_new_one(
    client: RegistryClient, server: ScriptedServer
) -> None:
    # The server read the second request and closed without a byte of answer: what a server
    # closing an idle connection as the request arrives looks like. A GET changes nothing, so
    # it is sent again, once, on a new connection (the server sees it twice).
    server.script[:] = ["ok", "drop"]
    assert blob(client, server) == BODY
    assert blob(client, server) == BODY
    assert server.accepted == 2
    assert len(server.seen) == 3


@pytest.mark.parametrize(
    ("script", "requests"),
    [
        pytest.param(["drop"], 1, id="dropped-on-a-new-connection"),
        pytest.param(["ok", "drop", "drop"], 2, id="dropped-again-after-the-one-retry"),
        pytest.param(["ok", "cut"], 1, id="part-of-an-answer-on-a-kept-connection"),
    ],
)
def test_a_request_is_not_sent_again_once_answered_in_part_or_already_retried(
    client: RegistryClient, server: ScriptedServer, script: list[str], requests: int
) -> None:
    server.script[:] = script
    if script[0] == "ok":
        assert blob(client, server) == BODY  # now one connection is kept
        server.seen.clear()
    with pytest.raises(RegistryError):
        blob(client, server)
    assert len(server.seen) == requests
    assert client.pool.idle_count() == 0


def test_idle_connections_are_closed_after_their_time(
    client: RegistryClient, server: ScriptedServer, clock: OffsetClock
) -> None:
    assert blob(client, server) == BODY
    clock.offset += 31
    assert blob(client, server) == BODY
    assert server.accepted == 2
    wait_for(lambda: server.closed == 1, timeout=5, interval=0.01)


def test_a_blob_redirect_hop_keeps_its_own_connection(
    client: RegistryClient, server: ScriptedServer, certificate: tuple[Path, Path]
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    registry = RedirectingServer(context, f"https://127.0.0.1:{server.server_port}/bucket/blob")
    thread = threading.Thread(target=registry.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        reference = parse_reference(f"127.0.0.1:{registry.server_port}/team/app:v1")
        for _ in range(3):
            fetched = client.get_blob(reference, BODY_DIGEST, credentials=ROBOT)
            assert fetched is not None and fetched.body == BODY
        assert registry.accepted == 1
        assert server.accepted == 1
        assert server.seen == [("GET", "/bucket/blob")] * 3
    finally:
        registry.shutdown()
        registry.server_close()
        thread.join(timeout=5)


ROBOT = Credentials("robot", "s3cret")


class Redirecting(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RedirectingServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.send_response(307)
        self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class RedirectingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext, location: str) -> None:
        super().__init__(("127.0.0.1", 0), Redirecting)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.location = location
        self.accepted = 0

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], address: object
    ) -> None:
        self.accepted += 1
        super().process_request(request, address)


# --- the referrers API, asked once per TTL where there is none ------------------------------


def referrers(client: RegistryClient, server: ScriptedServer) -> bytes | None:
    fetched = client.get_referrers(parse_reference(server.image()), BODY_DIGEST)
    return None if fetched is None else fetched.body


def referrer_requests(server: ScriptedServer) -> int:
    return sum("/referrers/" in path for _, path in server.seen)


def test_a_registry_without_the_referrers_api_is_asked_once_per_ttl(
    client: RegistryClient, server: ScriptedServer, clock: OffsetClock
) -> None:
    server.script[:] = ["404"]
    for _ in range(3):
        assert referrers(client, server) is None
    assert referrer_requests(server) == 1
    clock.offset += REFERRERS_TTL - 1
    assert referrers(client, server) is None
    assert referrer_requests(server) == 1
    clock.offset += 1  # the registry may have gained the API: asked again, and it answers
    assert referrers(client, server) == BODY
    assert referrer_requests(server) == 2


def test_a_registry_with_the_referrers_api_is_asked_every_time(
    client: RegistryClient, server: ScriptedServer
) -> None:
    for _ in range(3):
        assert referrers(client, server) == BODY
    assert referrer_requests(server) == 3


def test_cache_keys_and_credential_hashes_are_kept_per_value_and_bounded(
    client: RegistryClient, server: ScriptedServer
) -> None:
    reference = parse_reference(server.image())
    other_image = parse_reference(server.image("team/other"))
    first = client.cache_key(reference, Credentials("robot", "s3cret"))
    assert client.cache_key(reference, Credentials("robot", "s3cret")) == first
    assert client.cache_key(reference, Credentials("robot", "other")) != first
    assert client.cache_key(reference, None) != first
    assert (
        client.cache_key(other_image, Credentials("robot", "s3cret")).split()[1:]
        == (first.split()[1:])
    )
    for number in range(CACHE_KEYS_MAX + 10):
        client.cache_key(reference, Credentials(f"user-{number}", "pw"))
    assert client.cache_key(reference, Credentials("robot", "s3cret")) == first
    assert len(client._whos) <= WHO_MAX
    assert len(client._keys) <= CACHE_KEYS_MAX
    assert "s3cret" not in repr(client._keys)
