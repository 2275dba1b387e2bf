"""The registry client's pure parts: challenges, the Accept header, status and digest mapping,
the cache's TTL and bound, and that credentials never show. The network behaviour is proven
against a real registry in tests/integration/test_registry_resolution.py."""

from __future__ import annotations

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

IMAGE = "registry.example/team/app:1.0"
SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8
SECRET_USER, SECRET_PASSWORD = "robot$deployer", "pa55-w0rd-never-shown"


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
    ],
)
def test_config_refuses_nonsense(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RegistryClientConfig(**settings)  # type: ignore[arg-type]
