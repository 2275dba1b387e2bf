"""The registry client's pure parts: challenges, the Accept header, status and digest mapping,
the cache's TTL and bound, and that credentials never show; bearer tokens kept per token request
and credential, counted on a loopback registry and token service. The rest of the network
behaviour is proven against a real registry in tests/integration/test_registry_resolution.py."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mamori.images import parse_reference
from mamori.supplychain.challenges import (
    Challenge,
    MalformedChallenge,
    parse_challenges,
    pick_challenge,
    token_request_target,
)
from mamori.supplychain.digest_cache import CacheStats, DigestCache
from mamori.supplychain.registry import (
    ACCEPT_MANIFESTS,
    TOKEN_EXPIRY_MARGIN,
    TOKEN_MAX_LIFETIME,
    BadDigestHeader,
    Credentials,
    ImageNotFound,
    RegistryClient,
    RegistryClientConfig,
    RegistryError,
    RegistryProtocolError,
    RegistryUnavailable,
    Resolution,
    Unauthorized,
    content_digest,
    error_for_status,
)
from tests.integration.registry_support import write_loopback_certificate

IMAGE = "registry.example/team/app:1.0"
SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8
SECRET_USER, SECRET_PASSWORD = "robot$deployer", "pa55-w0rd-never-shown"
ROBOT = Credentials("robot", "s3cret")


def _challenge(scheme: str, **params: str) -> tuple[str, dict[str, str]]:
    return scheme, params


CHALLENGE_CASES = [
    pytest.param(
        'Bearer realm="https://auth.registry.example/token",service="registry.example",'
        'scope="repository:team/app:pull"',
        [
            _challenge(
                "bearer",
                realm="https://auth.registry.example/token",
                service="registry.example",
                scope="repository:team/app:pull",
            )
        ],
        id="bearer-realm-service-scope",
    ),
    pytest.param('Basic realm="mamori-test"', [_challenge("basic", realm="mamori-test")]),
    pytest.param("basic REALM=plain", [_challenge("basic", realm="plain")], id="case-token"),
    pytest.param(
        'Bearer realm="https://a.example/t" , scope="repository:x:pull,push"',
        [_challenge("bearer", realm="https://a.example/t", scope="repository:x:pull,push")],
        id="comma-inside-quotes",
    ),
    pytest.param(
        r'Basic realm="say \"hi\" \\ here"',
        [_challenge("basic", realm='say "hi" \\ here')],
        id="quoted-pairs",
    ),
    pytest.param(
        'Basic realm="r1", Bearer realm="https://a.example/t",service=s',
        [
            _challenge("basic", realm="r1"),
            _challenge("bearer", realm="https://a.example/t", service="s"),
        ],
        id="two-challenges",
    ),
    pytest.param("Negotiate", [_challenge("negotiate")], id="scheme-alone"),
]


@pytest.mark.parametrize(("header", "expected"), CHALLENGE_CASES)
def test_www_authenticate_parses(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    parsed = parse_challenges(header)
    assert [(c.scheme, dict(c.params)) for c in parsed] == expected


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param('realm="x"', id="param-without-scheme"),
        pytest.param('Bearer realm="unterminated', id="unterminated-quote"),
        pytest.param("Bearer realm=", id="missing-value"),
        pytest.param("Bearer realm=a b=c=d", id="stray-equals"),
        pytest.param("Bearer (realm)", id="not-a-token"),
    ],
)
def test_malformed_www_authenticate_is_refused(header: str) -> None:
    with pytest.raises(MalformedChallenge):
        parse_challenges(header)


@pytest.mark.parametrize(
    ("header", "scheme"),
    [
        pytest.param('Basic realm="r", Bearer realm="https://a.example/t"', "bearer"),
        pytest.param('Basic realm="r"', "basic"),
        pytest.param("Negotiate, NTLM", None),
    ],
)
def test_bearer_is_preferred_and_unknown_schemes_are_not_answered(
    header: str, scheme: str | None
) -> None:
    picked = pick_challenge(parse_challenges(header))
    assert (picked.scheme if picked else None) == scheme


def test_token_request_asks_for_pull_on_the_repository_at_the_realm() -> None:
    challenge = Challenge(
        "bearer", {"realm": "https://auth.registry.example:8443/token?x=1", "service": "reg"}
    )
    host, port, target = token_request_target(challenge, "team/app")
    assert (host, port) == ("auth.registry.example", 8443)
    assert target == "/token?x=1&service=reg&scope=repository%3Ateam%2Fapp%3Apull"


@pytest.mark.parametrize(
    "realm",
    [
        pytest.param("http://auth.registry.example/token", id="plain-http"),
        pytest.param("", id="missing"),
        pytest.param("/token", id="relative"),
        pytest.param("https:///token", id="no-host"),
    ],
)
def test_token_realm_must_be_https(realm: str) -> None:
    with pytest.raises(ValueError, match="https"):
        token_request_target(Challenge("bearer", {"realm": realm}), "team/app")


def test_accept_header_asks_for_indexes_and_manifests_in_both_formats() -> None:
    assert ACCEPT_MANIFESTS.split(", ") == [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]


@pytest.mark.parametrize(
    ("status", "error", "detail"),
    [
        pytest.param(404, ImageNotFound, "", id="404"),
        pytest.param(401, Unauthorized, "HTTP 401", id="401"),
        pytest.param(403, Unauthorized, "HTTP 403", id="403"),
        pytest.param(301, RegistryProtocolError, "redirects are refused", id="301"),
        pytest.param(307, RegistryProtocolError, "redirects are refused", id="307"),
        pytest.param(429, RegistryUnavailable, "HTTP 429", id="429"),
        pytest.param(500, RegistryUnavailable, "HTTP 500", id="500"),
        pytest.param(503, RegistryUnavailable, "HTTP 503", id="503"),
        pytest.param(400, RegistryProtocolError, "HTTP 400", id="400"),
        pytest.param(204, RegistryProtocolError, "HTTP 204", id="204"),
    ],
)
def test_status_maps_to_a_typed_error_that_names_the_image(
    status: int, error: type[RegistryError], detail: str
) -> None:
    mapped = error_for_status(status, IMAGE, authenticated=True)
    assert type(mapped) is error
    assert str(mapped).startswith(f"resolving {IMAGE}: ")
    assert detail in str(mapped)


def test_unauthorized_says_when_no_credentials_were_sent() -> None:
    assert "without credentials" in str(error_for_status(401, IMAGE, authenticated=False))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(SHA256, SHA256, id="sha256"),
        pytest.param(SHA512, SHA512, id="sha512"),
        pytest.param(f" {SHA256}\t", SHA256, id="surrounding-space"),
        pytest.param(None, None, id="missing"),
        pytest.param("", None, id="empty"),
        pytest.param(SHA256.upper(), None, id="upper-case"),
        pytest.param(SHA256[:-1], None, id="short"),
        pytest.param(SHA256 + "0", None, id="long"),
        pytest.param("md5:" + "0" * 32, None, id="other-algorithm"),
        pytest.param(f"{SHA256}, {SHA256}", None, id="two-values"),
        pytest.param("sha256:" + "g" * 64, None, id="not-hex"),
    ],
)
def test_digest_header_is_checked(header: str | None, expected: str | None) -> None:
    if expected is not None:
        assert content_digest(header, IMAGE) == expected
        return
    with pytest.raises(BadDigestHeader, match=f"resolving {IMAGE}: "):
        content_digest(header, IMAGE)


def test_credentials_never_show_in_a_repr_or_an_error() -> None:
    credentials = Credentials(SECRET_USER, SECRET_PASSWORD)
    texts = [repr(credentials), str(credentials), repr(RegistryClientConfig())]
    texts += [str(error_for_status(s, IMAGE, authenticated=True)) for s in (401, 403, 404, 500)]
    for text in texts:
        assert SECRET_USER not in text and SECRET_PASSWORD not in text
    # the header itself carries them, which is why it is built on demand and never stored
    assert credentials.basic_authorization().startswith("Basic ")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _resolution(tag: str, digest: str = SHA256) -> Resolution:
    return Resolution(parse_reference(f"registry.example/app:{tag}"), digest, None)


def test_cache_answers_within_the_ttl_and_not_after() -> None:
    clock = FakeClock()
    cache: DigestCache[Resolution] = DigestCache(ttl=30, max_entries=10, clock=clock)
    cache.put("a", _resolution("a"))
    clock.now += 29.999
    assert cache.get("a") == _resolution("a")
    clock.now += 0.001
    assert cache.get("a") is None
    assert cache.stats() == CacheStats(hits=1, misses=1, evictions=0, size=0)


def test_cache_keeps_at_most_max_entries_dropping_the_least_recently_used() -> None:
    cache: DigestCache[Resolution] = DigestCache(ttl=30, max_entries=2, clock=FakeClock())
    cache.put("a", _resolution("a"))
    cache.put("b", _resolution("b"))
    assert cache.get("a") is not None  # a is now more recent than b
    cache.put("c", _resolution("c"))
    assert [cache.get(key) is not None for key in ("a", "b", "c")] == [True, False, True]
    stats = cache.stats()
    assert (stats.evictions, stats.size) == (1, 2)


def test_cache_counts_hits_per_entry() -> None:
    cache: DigestCache[Resolution] = DigestCache(ttl=30, max_entries=10, clock=FakeClock())
    cache.put("a", _resolution("a"))
    for _ in range(3):
        cache.get("a")
    cache.get("missing")
    assert (cache.hits_of("a"), cache.hits_of("missing")) == (3, 0)
    assert (cache.stats().hits, cache.stats().misses) == (3, 1)


def test_a_new_answer_restarts_the_ttl() -> None:
    clock = FakeClock()
    cache: DigestCache[Resolution] = DigestCache(ttl=10, max_entries=10, clock=clock)
    cache.put("a", _resolution("a", SHA256))
    clock.now += 8
    cache.put("a", _resolution("a", SHA512))
    clock.now += 8
    cached = cache.get("a")
    assert cached is not None and cached.digest == SHA512


@pytest.mark.parametrize(("ttl", "max_entries"), [(0, 10), (30, 0)])
def test_a_zero_ttl_or_bound_turns_the_cache_off(ttl: float, max_entries: int) -> None:
    cache: DigestCache[Resolution] = DigestCache(
        ttl=ttl, max_entries=max_entries, clock=FakeClock()
    )
    cache.put("a", _resolution("a"))
    assert cache.get("a") is None


def test_cache_keys_separate_credentials_and_hold_no_secret() -> None:
    client = RegistryClient(RegistryClientConfig())
    reference = parse_reference(IMAGE)
    mine = Credentials(SECRET_USER, SECRET_PASSWORD)
    keys = {
        client.cache_key(reference, None),
        client.cache_key(reference, mine),
        client.cache_key(reference, Credentials(SECRET_USER, "other")),
    }
    assert len(keys) == 3
    same = Credentials(SECRET_USER, SECRET_PASSWORD)
    assert client.cache_key(reference, mine) == client.cache_key(reference, same)
    assert not any(SECRET_PASSWORD in key or SECRET_USER in key for key in keys)


def test_a_digest_reference_is_answered_without_asking_the_registry() -> None:
    # nothing listens for registry.example: any network use would fail the test
    client = RegistryClient(RegistryClientConfig(deadline=0.01))
    resolution = client.resolve(f"registry.example/app:1.0@{SHA256}")
    assert (resolution.digest, resolution.media_type) == (SHA256, None)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"deadline": 0}, id="zero-deadline"),
        pytest.param({"deadline": -1.0}, id="negative-deadline"),
        pytest.param({"max_response_bytes": 10}, id="tiny-response-bound"),
        pytest.param({"cache_ttl": -1.0}, id="negative-ttl"),
        pytest.param({"cache_max_entries": -1}, id="negative-bound"),
        pytest.param({"token_cache_max_entries": -1}, id="negative-token-bound"),
    ],
)
def test_config_refuses_nonsense(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RegistryClientConfig(**settings)  # type: ignore[arg-type]


# --- bearer tokens kept, counted on a loopback registry and token service -------------------

TOKEN_DEADLINE = 1.0
TOKEN_MARGIN = TOKEN_EXPIRY_MARGIN + TOKEN_DEADLINE
OTHER = Credentials("someone-else", "another-pa55")
UNSET = object()


class BearerRegistryHandler(http.server.BaseHTTPRequestHandler):
    """HEAD of a manifest wants a token the service issued; GET /token issues tok-1, tok-2…"""

    protocol_version = "HTTP/1.1"
    server: BearerRegistry

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_HEAD(self) -> None:
        registry = self.server
        authorization = self.headers.get("Authorization")
        with registry.lock:
            registry.heads.append((self.path, authorization))
            accepted = authorization in registry.valid and not registry.refuse_all
        if accepted:
            self.send_response(200)
            self.send_header("Docker-Content-Digest", SHA256)
        else:
            realm = f"https://127.0.0.1:{registry.server_port}/token"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="fake"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        registry = self.server
        with registry.lock:
            registry.token_requests.append((self.path, self.headers.get("Authorization")))
            token = f"tok-{len(registry.token_requests)}"
            registry.valid.add(f"Bearer {token}")
        document: object = {"token": token}
        if registry.expires_in is not UNSET:
            document = {"token": token, "expires_in": registry.expires_in}
        if registry.document is not UNSET:
            document = registry.document
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class BearerRegistry(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), BearerRegistryHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.heads: list[tuple[str, str | None]] = []
        self.token_requests: list[tuple[str, str | None]] = []
        self.valid: set[str] = set()
        self.refuse_all = False
        self.expires_in: object = UNSET
        self.document: object = UNSET

    def image(self, repository: str = "team/app", tag: str = "v1") -> str:
        return f"127.0.0.1:{self.server_port}/{repository}:{tag}"


class OffsetClock:
    """Monotonic time that a test moves forward (each call's deadline stays real)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass
class BearerSetup:
    server: BearerRegistry
    clock: OffsetClock
    context: ssl.SSLContext

    def client(self, *, token_cache_max_entries: int = 256) -> RegistryClient:
        # cache_ttl=0: every resolve asks the registry, so only the token cache can save a call
        config = RegistryClientConfig(
            ssl_context=self.context,
            deadline=TOKEN_DEADLINE,
            cache_ttl=0,
            token_cache_max_entries=token_cache_max_entries,
        )
        return RegistryClient(config, clock=self.clock)


@pytest.fixture
def bearer(tmp_path: Path) -> Iterator[BearerSetup]:
    cert, key = write_loopback_certificate(tmp_path)
    server = BearerRegistry(cert, key)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield BearerSetup(server, OffsetClock(), ssl.create_default_context(cafile=str(cert)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_token_is_asked_for_once_and_then_sent_at_once(bearer: BearerSetup) -> None:
    client = bearer.client()
    for tag in ("v1", "v2", "v1"):
        assert client.resolve(bearer.server.image(tag=tag), credentials=ROBOT).digest == SHA256
    assert len(bearer.server.token_requests) == 1
    assert bearer.server.heads == [
        ("/v2/team/app/manifests/v1", None),
        ("/v2/team/app/manifests/v1", "Bearer tok-1"),
        ("/v2/team/app/manifests/v2", "Bearer tok-1"),
        ("/v2/team/app/manifests/v1", "Bearer tok-1"),
    ]


@pytest.mark.parametrize(
    ("expires_in", "later", "asked_again"),
    [
        pytest.param(UNSET, 60 - TOKEN_MARGIN - 0.5, False, id="absent-is-60s-kept"),
        pytest.param(UNSET, 60 - TOKEN_MARGIN, True, id="absent-is-60s-renewed-before-expiry"),
        pytest.param(300, 300 - TOKEN_MARGIN - 0.5, False, id="300s-kept"),
        pytest.param(300, 300 - TOKEN_MARGIN, True, id="300s-renewed-before-expiry"),
        pytest.param(10**9, TOKEN_MAX_LIFETIME - TOKEN_MARGIN, True, id="at-most-an-hour"),
        pytest.param(3, 0, True, id="shorter-than-the-margin-not-kept"),
        pytest.param(0, 0, True, id="zero-not-kept"),
        pytest.param(-5, 0, True, id="negative-not-kept"),
        pytest.param("300", 0, True, id="a-string-not-kept"),
        pytest.param(True, 0, True, id="a-boolean-not-kept"),
    ],
)
def test_a_token_is_kept_as_long_as_expires_in_says_less_a_margin(
    bearer: BearerSetup, expires_in: object, later: float, asked_again: bool
) -> None:
    bearer.server.expires_in = expires_in
    client = bearer.client()
    client.resolve(bearer.server.image(), credentials=ROBOT)
    bearer.clock.offset = later
    client.resolve(bearer.server.image(), credentials=ROBOT)
    assert len(bearer.server.token_requests) == (2 if asked_again else 1)


def test_tokens_are_kept_per_repository_and_per_credential(bearer: BearerSetup) -> None:
    client = bearer.client()
    asks = [("team/app", ROBOT), ("team/other", ROBOT), ("team/app", OTHER), ("team/app", None)]
    for _ in range(2):
        for repository, credentials in asks:
            client.resolve(bearer.server.image(repository), credentials=credentials)
    requests = bearer.server.token_requests
    assert [(scope_of(path), who) for path, who in requests] == [
        ("repository:team/app:pull", ROBOT.basic_authorization()),
        ("repository:team/other:pull", ROBOT.basic_authorization()),
        ("repository:team/app:pull", OTHER.basic_authorization()),
        ("repository:team/app:pull", None),
    ]
    # each repeat went out with the token its own request had fetched
    assert [auth for _, auth in bearer.server.heads[-4:]] == [
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-3",
        "Bearer tok-4",
    ]


def scope_of(path: str) -> str:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))["scope"]


def test_a_kept_token_the_registry_refuses_is_dropped_and_asked_for_once_more(
    bearer: BearerSetup,
) -> None:
    client = bearer.client()
    client.resolve(bearer.server.image(), credentials=ROBOT)
    bearer.server.valid.clear()  # the registry revokes tok-1
    assert client.resolve(bearer.server.image(), credentials=ROBOT).digest == SHA256
    client.resolve(bearer.server.image(), credentials=ROBOT)
    assert [auth for _, auth in bearer.server.heads] == [
        None,
        "Bearer tok-1",
        "Bearer tok-1",  # refused
        "Bearer tok-2",
        "Bearer tok-2",  # the new one is kept
    ]
    assert len(bearer.server.token_requests) == 2


def test_a_registry_that_refuses_every_token_is_unauthorized_after_one_retry(
    bearer: BearerSetup,
) -> None:
    client = bearer.client()
    client.resolve(bearer.server.image(), credentials=ROBOT)
    bearer.server.refuse_all = True
    with pytest.raises(Unauthorized, match="team/app:v1"):
        client.resolve(bearer.server.image(), credentials=ROBOT)
    assert [auth for _, auth in bearer.server.heads[2:]] == ["Bearer tok-1", "Bearer tok-2"]
    assert len(bearer.server.token_requests) == 2


def test_the_token_cache_keeps_at_most_its_bound(bearer: BearerSetup) -> None:
    client = bearer.client(token_cache_max_entries=2)
    for repository in ("team/a", "team/b", "team/c", "team/a"):
        client.resolve(bearer.server.image(repository), credentials=ROBOT)
    assert len(bearer.server.token_requests) == 4  # team/a's token was the least recent
    assert len(client.token_cache) == 2


def test_a_zero_token_bound_asks_for_a_token_every_time(bearer: BearerSetup) -> None:
    client = bearer.client(token_cache_max_entries=0)
    for _ in range(3):
        client.resolve(bearer.server.image(), credentials=ROBOT)
    assert len(bearer.server.token_requests) == 3


def test_the_token_cache_holds_no_credentials(bearer: BearerSetup) -> None:
    secret = Credentials(SECRET_USER, SECRET_PASSWORD)
    client = bearer.client()
    client.resolve(bearer.server.image(), credentials=secret)
    text = repr(client.token_cache.keys())
    assert len(client.token_cache) == 1
    for leak in (SECRET_USER, SECRET_PASSWORD, secret.basic_authorization().split()[1]):
        assert leak not in text


@pytest.mark.parametrize(
    "document",
    [pytest.param([], id="a-list"), pytest.param("tok", id="a-string"), pytest.param(None)],
)
def test_a_token_response_that_is_not_an_object_is_a_protocol_error(
    bearer: BearerSetup, document: object
) -> None:
    bearer.server.document = document
    with pytest.raises(RegistryProtocolError, match="not a JSON object"):
        bearer.client().resolve(bearer.server.image(), credentials=ROBOT)
