"""Tag → digest against a real OCI registry (distribution, TLS, htpasswd) on loopback.

What admission will rely on: the digest is the one the registry (and crane) reports, a moved tag
is seen once the cache's TTL has passed and not before, refusals are typed and never quote the
credentials, and a registry that is gone, hangs, drips or floods costs at most the deadline.
The misbehaving servers are loopback sockets opened here; the bearer-token dance is proven on
one of them (the registry here speaks Basic).
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mamori.supplychain.registry import (
    Credentials,
    ImageNotFound,
    RegistryClient,
    RegistryClientConfig,
    RegistryError,
    RegistryTimeout,
    RegistryTLSError,
    RegistryUnavailable,
    ResponseTooLarge,
    Unauthorized,
)
from tests.integration.registry_support import (
    TestRegistry,
    running_registry,
    write_loopback_certificate,
)

pytestmark = pytest.mark.integration

DEADLINE = 0.5
# How far past the deadline a refusal may come: scheduling on a busy 2-core machine.
DEADLINE_SLACK = 0.3
TTL = 30.0
ROBOT = Credentials("robot", "s3cret")
ROBOT_BASIC = "Basic cm9ib3Q6czNjcmV0"  # robot:s3cret


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def pushed(registry: TestRegistry) -> dict[str, str]:
    """Two images in demo/app: tag v1 → first, tag v2 → second."""
    return {
        "first": registry.push_image("demo/app", "v1", "first"),
        "second": registry.push_image("demo/app", "v2", "second"),
    }


class OffsetClock:
    """Monotonic time that a test can move forward (the deadline stays real)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def _client(context: ssl.SSLContext, clock: Callable[[], float] = time.monotonic) -> RegistryClient:
    config = RegistryClientConfig(
        ssl_context=context, deadline=DEADLINE, cache_ttl=TTL, max_response_bytes=64 * 1024
    )
    return RegistryClient(config, clock=clock)


def _credentials(registry: TestRegistry) -> Credentials:
    return Credentials(registry.username, registry.password)


def test_a_pushed_tag_resolves_to_the_digest_crane_reports(
    registry: TestRegistry, pushed: dict[str, str]
) -> None:
    client = _client(registry.ssl_context())
    resolution = client.resolve(
        f"{registry.address}/demo/app:v1", credentials=_credentials(registry)
    )
    assert resolution.digest == registry.digest("demo/app", "v1") == pushed["first"]
    assert resolution.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert not resolution.cached


def test_a_moved_tag_resolves_to_the_old_digest_within_the_ttl_and_the_new_after(
    registry: TestRegistry, pushed: dict[str, str]
) -> None:
    registry.push_image("demo/moving", "live", "before")
    before = registry.digest("demo/moving", "live")
    clock = OffsetClock()
    client = _client(registry.ssl_context(), clock)
    image, credentials = f"{registry.address}/demo/moving:live", _credentials(registry)
    assert client.resolve(image, credentials=credentials).digest == before

    after = registry.push_image("demo/moving", "next", "after")
    registry.move_tag("demo/moving", "live", after)
    assert registry.digest("demo/moving", "live") == after != before

    clock.offset = TTL - 1
    within = client.resolve(image, credentials=credentials)
    assert (within.digest, within.cached) == (before, True)
    clock.offset = TTL
    past = client.resolve(image, credentials=credentials)
    assert (past.digest, past.cached) == (after, False)
    key = client.cache_key(past.reference, credentials)
    assert client.cache.hits_of(key) == 0
    client.resolve(image, credentials=credentials)
    assert client.cache.hits_of(key) == 1


@pytest.mark.parametrize(
    ("who", "after_success"),
    [
        pytest.param("wrong-password", False, id="wrong-password"),
        # the client has learnt that this registry asks for Basic, and sends it at once
        pytest.param("wrong-password", True, id="wrong-password-after-a-success"),
        pytest.param(None, False, id="anonymous"),
    ],
)
def test_refused_credentials_are_unauthorized_and_never_quoted(
    registry: TestRegistry, pushed: dict[str, str], who: str | None, after_success: bool
) -> None:
    client = _client(registry.ssl_context())
    if after_success:
        good = client.resolve(f"{registry.address}/demo/app:v2", credentials=_credentials(registry))
        assert good.digest == pushed["second"]
    credentials = None if who is None else Credentials(registry.username, who)
    image = f"{registry.address}/demo/app:v1"
    with pytest.raises(Unauthorized) as refused:
        client.resolve(image, credentials=credentials)
    text = f"{refused.value} {refused.value!r} {refused.value.args}"
    assert image in str(refused.value)
    for secret in (registry.username, registry.password, "wrong-password"):
        assert secret not in text


@pytest.mark.parametrize("reference", ["demo/app:nope", "demo/none:v1"], ids=["tag", "repo"])
def test_an_unknown_tag_or_repository_is_not_found(
    registry: TestRegistry, pushed: dict[str, str], reference: str
) -> None:
    client = _client(registry.ssl_context())
    with pytest.raises(ImageNotFound, match=f"{registry.address}/{reference}"):
        client.resolve(f"{registry.address}/{reference}", credentials=_credentials(registry))


def test_a_certificate_the_client_does_not_trust_is_a_tls_failure(
    registry: TestRegistry, pushed: dict[str, str]
) -> None:
    client = _client(ssl.create_default_context())  # the system's roots: not our test CA
    with pytest.raises(RegistryTLSError, match="certificate"):
        client.resolve(f"{registry.address}/demo/app:v1", credentials=_credentials(registry))


def test_a_stopped_registry_is_unavailable_at_once(tmp_path: Path) -> None:
    with running_registry(tmp_path / "short-lived") as short_lived:
        image, context = f"{short_lived.address}/demo/app:v1", short_lived.ssl_context()
    client = _client(context)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="ConnectionRefusedError"):
        client.resolve(image)
    assert time.monotonic() - started < DEADLINE


def _timed_refusal(client: RegistryClient, image: str) -> tuple[RegistryError, float]:
    started = time.monotonic()
    with pytest.raises(RegistryError) as refused:
        client.resolve(image, credentials=Credentials("u", "p"))
    return refused.value, time.monotonic() - started


def test_a_server_that_accepts_and_never_answers_times_out_at_the_deadline(
    tmp_path: Path,
) -> None:
    cert, _ = write_loopback_certificate(tmp_path)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the TCP handshake; nobody ever reads
        port = silent.getsockname()[1]
        client = _client(ssl.create_default_context(cafile=str(cert)))
        error, elapsed = _timed_refusal(client, f"127.0.0.1:{port}/demo/app:v1")
    assert isinstance(error, RegistryTimeout)
    assert DEADLINE <= elapsed < DEADLINE + DEADLINE_SLACK, elapsed


class FakeRegistryHandler(http.server.BaseHTTPRequestHandler):
    """A registry that behaves as ``server.mode`` says: "drip", "flood", "bearer", "basic"."""

    protocol_version = "HTTP/1.1"
    server: FakeRegistry

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_HEAD(self) -> None:
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.server.mode == "drip":
            self._drip()
        elif self.server.mode == "basic":
            self._basic()
        elif self.headers.get("Authorization") == "Bearer t0ken":
            self.send_response(200)
            self.send_header("Docker-Content-Digest", self.server.digest)
            self.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
            self.send_header("Content-Length", "1234")
            self.end_headers()
        else:
            realm = f"https://127.0.0.1:{self.server.server_port}/token?x=1"
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate", f'Bearer realm="{realm}",service="fake",scope="ignored"'
            )
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.server.mode == "flood":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(64 * 1024 * 1024))
            self.end_headers()
            chunk = b" " * 65536
            try:
                while not self.server.stopping.is_set():
                    self.wfile.write(chunk)
            except OSError:
                return
        else:
            body = json.dumps({"token": "t0ken", "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _basic(self) -> None:
        if self.headers.get("Authorization") == ROBOT_BASIC:
            self.send_response(200)
            self.send_header("Docker-Content-Digest", self.server.digest)
        else:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="fake"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self) -> None:
        """Headers one at a time, forever: every read is quick, the response never ends."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for count in range(10_000):
                if self.server.stopping.wait(0.05):
                    return
                self.wfile.write(f"X-Drip-{count}: .\r\n".encode())
                self.wfile.flush()
        except OSError:
            return


class FakeRegistry(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), FakeRegistryHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.mode = mode
        self.digest = "sha256:" + "5" * 64
        self.seen: list[tuple[str, str, str | None]] = []
        self.stopping = threading.Event()


@pytest.fixture
def fake_registry(tmp_path: Path) -> Iterator[Callable[[str], tuple[FakeRegistry, RegistryClient]]]:
    cert, key = write_loopback_certificate(tmp_path)
    started: list[tuple[FakeRegistry, threading.Thread]] = []

    def start(mode: str) -> tuple[FakeRegistry, RegistryClient]:
        server = FakeRegistry(mode, cert, key)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        started.append((server, thread))
        return server, _client(ssl.create_default_context(cafile=str(cert)))

    yield start
    for server, thread in started:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_headers_dripped_forever_time_out_at_the_deadline(
    fake_registry: Callable[[str], tuple[FakeRegistry, RegistryClient]],
) -> None:
    server, client = fake_registry("drip")
    error, elapsed = _timed_refusal(client, f"127.0.0.1:{server.server_port}/demo/app:v1")
    assert isinstance(error, RegistryTimeout)
    assert DEADLINE <= elapsed < DEADLINE + DEADLINE_SLACK, elapsed


def test_a_huge_response_body_is_refused(
    fake_registry: Callable[[str], tuple[FakeRegistry, RegistryClient]],
) -> None:
    server, client = fake_registry("flood")
    error, elapsed = _timed_refusal(client, f"127.0.0.1:{server.server_port}/demo/app:v1")
    assert isinstance(error, ResponseTooLarge), error
    assert "65536 bytes" in str(error)
    assert elapsed < DEADLINE


def test_the_bearer_dance_fetches_a_pull_token_with_the_credentials(
    fake_registry: Callable[[str], tuple[FakeRegistry, RegistryClient]],
) -> None:
    server, client = fake_registry("bearer")
    image = f"127.0.0.1:{server.server_port}/demo/app:v1"
    resolution = client.resolve(image, credentials=ROBOT)
    assert resolution.digest == server.digest
    assert server.seen == [
        ("HEAD", "/v2/demo/app/manifests/v1", None),
        ("GET", "/token?x=1&service=fake&scope=repository%3Ademo%2Fapp%3Apull", ROBOT_BASIC),
        ("HEAD", "/v2/demo/app/manifests/v1", "Bearer t0ken"),
    ]


def test_a_registry_that_asked_for_basic_gets_it_at_once_next_time(
    fake_registry: Callable[[str], tuple[FakeRegistry, RegistryClient]],
) -> None:
    server, client = fake_registry("basic")
    for tag in ("v1", "v2"):
        image = f"127.0.0.1:{server.server_port}/demo/app:{tag}"
        assert client.resolve(image, credentials=ROBOT).digest == server.digest
    assert server.seen == [
        ("HEAD", "/v2/demo/app/manifests/v1", None),
        ("HEAD", "/v2/demo/app/manifests/v1", ROBOT_BASIC),
        ("HEAD", "/v2/demo/app/manifests/v2", ROBOT_BASIC),
    ]
