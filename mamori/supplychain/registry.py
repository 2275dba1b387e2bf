"""Resolve an image tag to the digest its registry serves, over the OCI distribution API.

A tag is a pointer the registry may move at any time; a digest names content. Supply-chain
checks judge content, so they start here: ``HEAD /v2/<repository>/manifests/<tag>`` and the
``Docker-Content-Digest`` header of the answer.

Admission waits on this call, so every call has a hard deadline (connect, TLS handshake, every
request and every read of every response together; bounded_http.py), every response a size
bound, and redirects are refused except for blobs (one hop, to https, without the credentials:
ECR keeps blobs in S3). Credentials come from the caller, are sent only over TLS, and
never appear in a repr, a log line or an error message. 401 challenges are read by
challenges.py; answers are kept in a small TTL cache (digest_cache.py) so that a busy admission
path asks the registry once per tag per TTL. Bearer tokens are kept too, per token request and
credential, for as long as the token service says they live: a registry that asked for a token
once is sent it at once, without the 401 round trip or a call to the token service.

A review's requests go one after another to the same registry, so connections are kept per
(host, port) and used again (bounded_http.ConnectionPool), each request under its own deadline
and size bound as on a new one. A registry without the referrers API (OCI 1.1: one that has it
never answers 404 there, it answers an empty index) is remembered for ``referrers_memo_ttl``,
and not asked again meanwhile: the signature readers go straight to the tag-schema index.

Standard library only (http.client, ssl): the core loads no third-party HTTP client.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import re
import ssl
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Generic, TypeVar

from mamori.images import ImageReference, parse_reference, split_port
from mamori.supplychain.bounded_http import (
    Answer,
    ConnectionPool,
    Deadline,
    Endpoint,
    TooLarge,
    request,
)
from mamori.supplychain.challenges import (
    Challenge,
    MalformedChallenge,
    parse_challenges,
    pick_challenge,
    token_request_target,
)
from mamori.supplychain.digest_cache import DigestCache
from mamori.supplychain.single_flight import SingleFlight

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# Indexes first: for a multi-platform image the digest that names it is the index's digest.
MANIFEST_MEDIA_TYPES: Final = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
ACCEPT_MANIFESTS: Final = ", ".join(MANIFEST_MEDIA_TYPES)

# The digests a runtime verifies, in the canonical form registries send (lower-case hex).
CONTENT_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}", re.ASCII)
# A tag, as the distribution spec defines it (what may follow /manifests/ besides a digest).
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
# A bearer token is opaque, but no registry's comes near this; a longer one is refused.
TOKEN_MAX_LENGTH = 16 * 1024
# Registry endpoints remembered as asking for Basic auth (a handful in any real cluster).
BASIC_ENDPOINTS_MAX = 256
# Credentials whose keyed hash is kept (one per pull secret in use; more are hashed again).
WHO_MAX = 256
# Cache keys kept per (image, credentials): building one normalizes the registry name.
CACHE_KEYS_MAX = 1024
# The distribution token spec: a token without ``expires_in`` lives 60 seconds.
TOKEN_DEFAULT_LIFETIME = 60.0
# However long a token service says a token lives, it is asked again after an hour.
TOKEN_MAX_LIFETIME = 3600.0
# A token is used only while this much of its life is left (plus one call's deadline), so that
# it never expires on the way to the registry.
TOKEN_EXPIRY_MARGIN = 5.0


class RegistryError(Exception):
    """A resolution that failed; the message names the image and never the credentials."""

    reason = "failed"

    def __init__(self, image: str, detail: str = "") -> None:
        self.image = image
        self.detail = detail
        message = f"resolving {image}: {self.reason}"
        super().__init__(f"{message} ({detail})" if detail else message)


class ImageNotFound(RegistryError):
    reason = "the registry has no such repository or tag"


class Unauthorized(RegistryError):
    reason = "the registry refused the credentials (or anonymous access)"


class RegistryTimeout(RegistryError):
    reason = "the registry did not answer within the deadline"


class BadDigestHeader(RegistryError):
    reason = "the registry's Docker-Content-Digest header is missing or malformed"


class RegistryTLSError(RegistryError):
    reason = "TLS with the registry failed"


class RegistryUnavailable(RegistryError):
    reason = "the registry is unreachable or failing"


class ResponseTooLarge(RegistryError):
    reason = "the registry's response exceeds the size bound"


class RegistryProtocolError(RegistryError):
    reason = "the registry's answer is not what the distribution API specifies"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A registry user and password (or identity token), given by the caller.

    The repr hides both fields, so a dataclass printed in a log or a traceback leaks nothing.
    """

    username: str = field(repr=False)
    password: str = field(repr=False)

    def basic_authorization(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryClientConfig:
    """How the client talks to registries; built once by whoever wires it in.

    ``deadline`` bounds one :meth:`RegistryClient.resolve` call end to end (seconds).
    ``max_response_bytes`` bounds each response, status line and headers included.
    ``ssl_context`` verifies registry certificates (default: the system's trust store).
    ``api_hosts`` maps a registry as images name it to the host[:port] that serves its API,
    for registries whose API lives elsewhere. ``cache_ttl`` (seconds) and ``cache_max_entries``
    size the tag → digest cache; ``token_cache_max_entries`` bounds the bearer tokens kept (one
    per repository, credential and token service; 0 asks for a token every time).
    ``pool_per_endpoint`` idle connections are kept per registry host and port for
    ``pool_idle_seconds`` (0: a new connection per request). A registry that answered 404 to
    the referrers API is not asked there again for ``referrers_memo_ttl`` seconds (0: always
    asked).
    """

    deadline: float = 2.0
    max_response_bytes: int = 64 * 1024
    ssl_context: ssl.SSLContext | None = None
    api_hosts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    cache_ttl: float = 30.0
    cache_max_entries: int = 1024
    token_cache_max_entries: int = 256
    pool_per_endpoint: int = 4
    pool_idle_seconds: float = 30.0
    referrers_memo_ttl: float = 600.0

    def __post_init__(self) -> None:
        if not self.deadline > 0:
            raise ValueError(f"deadline must be positive seconds, got {self.deadline!r}")
        if self.max_response_bytes < 1024:
            raise ValueError(f"max_response_bytes must be >= 1024, got {self.max_response_bytes}")
        if self.cache_ttl < 0 or self.cache_max_entries < 0 or self.token_cache_max_entries < 0:
            raise ValueError(
                "cache_ttl, cache_max_entries and token_cache_max_entries must not be negative"
            )
        if self.pool_per_endpoint < 0 or self.pool_idle_seconds < 0 or self.referrers_memo_ttl < 0:
            raise ValueError(
                "pool_per_endpoint, pool_idle_seconds and referrers_memo_ttl must not be negative"
            )


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a tag pointed to when asked: the digest, and the manifest's media type."""

    reference: ImageReference
    digest: str
    media_type: str | None
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Fetched:
    """Content read from the registry (whole, within the size bound) and its digest."""

    digest: str
    media_type: str | None
    body: bytes = field(repr=False)


def _digest_of(body: bytes, like: str) -> str:
    """``body``'s digest, in the algorithm ``like`` names (sha512 or else sha256)."""
    if like.startswith("sha512:"):
        return "sha512:" + hashlib.sha512(body).hexdigest()
    return "sha256:" + hashlib.sha256(body).hexdigest()


# --- status → error -------------------------------------------------------------------------


def error_for_status(status: int, image: str, *, authenticated: bool) -> RegistryError:
    """The typed error for a manifest HEAD that did not answer 200."""
    if status == 404:
        return ImageNotFound(image)
    if status in (401, 403):
        detail = f"HTTP {status}" if authenticated else f"HTTP {status} without credentials"
        return Unauthorized(image, detail)
    if 300 <= status < 400:
        return RegistryProtocolError(image, f"HTTP {status}: redirects are refused")
    if status == 429 or status >= 500:
        return RegistryUnavailable(image, f"HTTP {status}")
    return RegistryProtocolError(image, f"HTTP {status}")


def content_digest(header: str | None, image: str) -> str:
    """The digest of a ``Docker-Content-Digest`` header, or :class:`BadDigestHeader`."""
    if header is None:
        raise BadDigestHeader(image, "no Docker-Content-Digest header")
    value = header.strip()
    if not CONTENT_DIGEST_RE.fullmatch(value):
        raise BadDigestHeader(image, f"{value[:80]!r} is not sha256:<64 hex> or sha512:<128 hex>")
    return value


class _BoundedSet:
    """A thread-safe set that forgets its oldest member past ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._members: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def knows(self, member: str) -> bool:
        with self._lock:
            return member in self._members

    def add(self, member: str) -> None:
        with self._lock:
            self._members[member] = None
            self._members.move_to_end(member)
            while len(self._members) > self._limit:
                self._members.popitem(last=False)

    def discard(self, member: str) -> None:
        with self._lock:
            self._members.pop(member, None)


V = TypeVar("V")


class _BoundedMap(Generic[V]):
    """A thread-safe mapping that forgets its least recently used entry past ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


# --- bearer tokens --------------------------------------------------------------------------

# (token service host, port, path?query with service and scope, whose credentials)
TokenKey = tuple[str, int, str, str]


def token_lifetime(document: Mapping[str, object]) -> float:
    """How long a token response says its token lives, in seconds: ``expires_in``, 60 when
    absent (the distribution token spec), at most an hour, and 0 (not kept) when it is not a
    positive number."""
    value = document.get("expires_in", TOKEN_DEFAULT_LIFETIME)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return 0.0
    return min(float(value), TOKEN_MAX_LIFETIME)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    usable_until: float


class TokenCache:
    """Bearer tokens until shortly before they expire, at most ``max_entries`` of them.

    Keyed by the token request (realm, service and scope, as sent) and a keyed hash of the
    credentials that asked (:meth:`RegistryClient.cache_key`'s): a token fetched with one
    credential is never sent for another, and the cache holds no password. Thread-safe.
    """

    def __init__(self, *, max_entries: int, clock: Callable[[], float]) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._tokens: OrderedDict[TokenKey, _Token] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: TokenKey) -> str | None:
        now = self._clock()
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and now >= token.usable_until:
                del self._tokens[key]
                token = None
            if token is None:
                return None
            self._tokens.move_to_end(key)
            return token.value

    def put(self, key: TokenKey, value: str, *, usable_until: float) -> None:
        if self._max_entries == 0 or usable_until <= self._clock():
            return
        with self._lock:
            self._tokens[key] = _Token(value, usable_until)
            self._tokens.move_to_end(key)
            while len(self._tokens) > self._max_entries:
                self._tokens.popitem(last=False)

    def drop(self, key: TokenKey, value: str) -> None:
        """Forget ``key``'s token if it is still ``value`` (the registry refused it)."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]

    def keys(self) -> tuple[TokenKey, ...]:
        with self._lock:
            return tuple(self._tokens)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


# --- the client -----------------------------------------------------------------------------


class RegistryClient:
    """Resolves image references to digests; one per process, shared by threads."""

    def __init__(
        self,
        config: RegistryClientConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._clock = clock
        self._context = config.ssl_context or ssl.create_default_context()
        self._cache_salt = os.urandom(16)
        self._basic_endpoints = _BoundedSet(BASIC_ENDPOINTS_MAX)
        # The bearer challenge each endpoint sent last: which token to send it at once.
        self._bearer_endpoints: _BoundedMap[Challenge] = _BoundedMap(BASIC_ENDPOINTS_MAX)
        self.cache: DigestCache[Resolution] = DigestCache(
            ttl=config.cache_ttl, max_entries=config.cache_max_entries, clock=clock
        )
        self.token_cache = TokenCache(max_entries=config.token_cache_max_entries, clock=clock)
        self.pool = ConnectionPool(
            context=self._context,
            per_endpoint=config.pool_per_endpoint,
            idle_for=config.pool_idle_seconds,
            clock=clock,
        )
        # Endpoints ("host:port") that answered 404 to the referrers API: no such API there.
        self._no_referrers_api: DigestCache[bool] = DigestCache(
            ttl=config.referrers_memo_ttl, max_entries=BASIC_ENDPOINTS_MAX, clock=clock
        )
        self._whos: OrderedDict[Credentials, str] = OrderedDict()
        self._keys: OrderedDict[tuple[ImageReference, Credentials | None], str] = OrderedDict()
        self._whos_lock = threading.Lock()
        # One HEAD per tag and credentials at a time: threads that miss the same expired tag
        # share the answer of the one that asks.
        self._resolving: SingleFlight[Resolution] = SingleFlight()

    def close(self) -> None:
        """Close the kept connections (the client stays usable: it opens new ones)."""
        self.pool.close()

    def resolve(
        self,
        image: str | ImageReference,
        *,
        credentials: Credentials | None = None,
        time_left: float | None = None,
    ) -> Resolution:
        """The digest ``image``'s tag points to now (or within the cache's TTL).

        A reference that already carries a digest is answered without asking: the runtime
        pulls that digest whatever the tag says. ``time_left`` (seconds) caps this call's
        deadline, for a caller with a budget of its own. Raises a :class:`RegistryError`
        subclass.
        """
        reference = parse_reference(image) if isinstance(image, str) else image
        if reference.digest is not None:
            return Resolution(reference, reference.digest, None)
        key = self.cache_key(reference, credentials)
        cached = self.cache.get(key)
        if cached is not None:
            return Resolution(reference, cached.digest, cached.media_type, cached=True)

        def ask() -> Resolution:
            resolution = self._ask(reference, credentials, str(reference), time_left)
            self.cache.put(key, resolution)
            return resolution

        wait = self._config.deadline if time_left is None else min(self._config.deadline, time_left)
        resolution, shared = self._resolving.run(key, ask, wait=wait)
        if shared:  # another thread's request: none was sent for this call
            return Resolution(reference, resolution.digest, resolution.media_type, cached=True)
        return resolution

    def cached(
        self, reference: ImageReference, *, credentials: Credentials | None = None
    ) -> Resolution | None:
        """What :meth:`resolve` would answer from its cache, or None (it never asks)."""
        if reference.digest is not None:
            return Resolution(reference, reference.digest, None)
        kept = self.cache.get(self.cache_key(reference, credentials))
        if kept is None:
            return None
        return Resolution(reference, kept.digest, kept.media_type, cached=True)

    def _deadline(self, image: str, time_left: float | None) -> Deadline:
        """One call's deadline: the configured one, or less when the caller has less left."""
        seconds = self._config.deadline
        if time_left is not None:
            if time_left <= 0:
                raise RegistryTimeout(image, "no time left")
            seconds = min(seconds, time_left)
        return Deadline(seconds, self._clock)

    @contextlib.contextmanager
    def _transport_errors(self, image: str, deadline: Deadline) -> Iterator[None]:
        """What went wrong on the wire, as the typed error that names ``image``."""
        try:
            yield
        except RegistryError:
            raise
        except TooLarge:
            raise ResponseTooLarge(
                image, f"more than {self._config.max_response_bytes} bytes"
            ) from None
        except TimeoutError:
            raise RegistryTimeout(image, f"{deadline.seconds:g}s") from None
        except (ssl.SSLError, ssl.CertificateError) as error:
            raise RegistryTLSError(image, _tls_detail(error)) from None
        except (ConnectionError, OSError) as error:
            raise RegistryUnavailable(image, type(error).__name__) from None
        except http.client.HTTPException as error:
            raise RegistryProtocolError(image, type(error).__name__) from None

    def _ask(
        self,
        reference: ImageReference,
        credentials: Credentials | None,
        image: str,
        time_left: float | None = None,
    ) -> Resolution:
        deadline = self._deadline(image, time_left)
        host, port = self._api_host(reference)
        path = f"/v2/{reference.path}/manifests/{reference.tag}"
        with self._transport_errors(image, deadline):
            answer = self._manifest_head(host, port, path, reference, credentials, deadline)
        if answer.status != 200:
            raise error_for_status(answer.status, image, authenticated=credentials is not None)
        digest = content_digest(answer.headers.get("Docker-Content-Digest"), image)
        media_type = (answer.headers.get("Content-Type") or "").split(";")[0].strip()
        return Resolution(reference, digest, media_type or None)

    def _manifest_head(
        self,
        host: str,
        port: int,
        path: str,
        reference: ImageReference,
        credentials: Credentials | None,
        deadline: Deadline,
        *,
        method: str = "HEAD",
        accept: str = ACCEPT_MANIFESTS,
    ) -> Answer:
        image = str(reference)
        endpoint = f"{host}:{port}"
        headers = {"Accept": accept}
        # A registry that asked for Basic before gets it at once: one round trip, not two.
        sent_basic = credentials is not None and self._basic_endpoints.knows(endpoint)
        # A registry that asked for a bearer token before gets the one kept for this request.
        sent_token = None if sent_basic else self._kept_token(endpoint, reference, credentials)
        if credentials is not None and sent_basic:
            headers["Authorization"] = credentials.basic_authorization()
        elif sent_token is not None:
            headers["Authorization"] = f"Bearer {sent_token[1]}"
        answer = self._exchange((host, port), method, path, headers, deadline)
        if answer.status != 401:
            return answer
        header = answer.headers.get("WWW-Authenticate")
        try:
            challenge = pick_challenge(parse_challenges(header or ""))
        except MalformedChallenge as error:
            raise RegistryProtocolError(image, f"WWW-Authenticate: {error}") from None
        if challenge is None:
            raise RegistryProtocolError(image, "no Basic or Bearer challenge")
        if sent_token is not None:
            self.token_cache.drop(*sent_token)  # refused: forgotten, and asked for once more
        if challenge.scheme == "basic":
            self._bearer_endpoints.discard(endpoint)
            if credentials is None or sent_basic:
                return answer
            self._basic_endpoints.add(endpoint)
            authorization = credentials.basic_authorization()
        else:
            self._basic_endpoints.discard(endpoint)
            self._bearer_endpoints.put(endpoint, challenge)
            token = self._bearer_token(challenge, reference, credentials, deadline)
            authorization = f"Bearer {token}"
        headers = {"Accept": accept, "Authorization": authorization}
        return self._exchange((host, port), method, path, headers, deadline)

    def _kept_token(
        self, endpoint: str, reference: ImageReference, credentials: Credentials | None
    ) -> tuple[TokenKey, str] | None:
        """The kept token for ``reference`` at an endpoint that asked for one before."""
        challenge = self._bearer_endpoints.get(endpoint)
        if challenge is None:
            return None
        try:
            key = self._token_key(challenge, reference, credentials)
        except ValueError:
            return None
        token = self.token_cache.get(key)
        return None if token is None else (key, token)

    def _token_key(
        self, challenge: Challenge, reference: ImageReference, credentials: Credentials | None
    ) -> TokenKey:
        host, port, target = token_request_target(challenge, reference.path)
        return host, port, target, self._who(credentials)

    def _bearer_token(
        self,
        challenge: Challenge,
        reference: ImageReference,
        credentials: Credentials | None,
        deadline: Deadline,
    ) -> str:
        image = str(reference)
        try:
            key = self._token_key(challenge, reference, credentials)
        except ValueError as error:
            raise RegistryProtocolError(image, str(error)) from None
        kept = self.token_cache.get(key)
        if kept is not None:
            return kept
        host, port, target, _ = key
        headers = {"Accept": "application/json"}
        if credentials is not None:
            headers["Authorization"] = credentials.basic_authorization()
        asked = self._clock()
        answer = self._exchange((host, port), "GET", target, headers, deadline)
        if answer.status in (401, 403):
            raise Unauthorized(image, f"token service answered HTTP {answer.status}")
        if answer.status != 200:
            raise error_for_status(answer.status, image, authenticated=credentials is not None)
        try:
            document = json.loads(answer.body)
        except ValueError:
            raise RegistryProtocolError(image, "the token response is not JSON") from None
        if not isinstance(document, dict):
            raise RegistryProtocolError(image, "the token response is not a JSON object")
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token or len(token) > TOKEN_MAX_LENGTH:
            raise RegistryProtocolError(image, "the token response holds no usable token")
        if not token.isascii() or not token.isprintable() or " " in token:
            raise RegistryProtocolError(image, "the token response holds no usable token")
        margin = TOKEN_EXPIRY_MARGIN + self._config.deadline
        self.token_cache.put(key, token, usable_until=asked + token_lifetime(document) - margin)
        return token

    # --- bounded GETs of content (for signature checks) -----------------------------------

    def get_manifest(
        self,
        reference: ImageReference,
        tag_or_digest: str,
        *,
        credentials: Credentials | None = None,
        time_left: float | None = None,
    ) -> Fetched | None:
        """The manifest ``tag_or_digest`` names in ``reference``'s repository, or None (404).

        Asked by digest, the body must hash to that digest; asked by tag, its digest is the
        body's hash (and must equal the Docker-Content-Digest header when one is sent).
        """
        path = f"/v2/{reference.path}/manifests/{tag_or_digest}"
        return self._get_content(
            reference, path, tag_or_digest, ACCEPT_MANIFESTS, credentials, time_left
        )

    def get_referrers(
        self,
        reference: ImageReference,
        digest: str,
        *,
        credentials: Credentials | None = None,
        time_left: float | None = None,
    ) -> Fetched | None:
        """The referrers index of ``digest`` (OCI 1.1), or None when the registry has no
        referrers API: the caller then reads the tag-schema fallback.

        The distribution spec (1.1) forbids a registry with the API to answer 404 here (no
        referrers is a 200 with an empty index), so a 404 means "no API" for the whole
        registry: remembered per endpoint for ``referrers_memo_ttl`` and answered None at
        once meanwhile, one request fewer per signature form; a registry that gains the API is
        asked again when that time is up.
        """
        if not CONTENT_DIGEST_RE.fullmatch(digest):
            raise RegistryProtocolError(str(reference), f"{digest[:80]!r} is not a digest")
        host, port = self._api_host(reference)
        endpoint = f"{host}:{port}"
        if self._no_referrers_api.get(endpoint):
            return None
        path = f"/v2/{reference.path}/referrers/{digest}"
        fetched = self._get_content(reference, path, None, OCI_INDEX, credentials, time_left)
        if fetched is None:
            self._no_referrers_api.put(endpoint, True)
        return fetched

    def get_blob(
        self,
        reference: ImageReference,
        digest: str,
        *,
        credentials: Credentials | None = None,
        time_left: float | None = None,
    ) -> Fetched | None:
        """The blob ``digest`` in ``reference``'s repository, checked against it, or None.

        A registry that keeps blobs elsewhere (Amazon ECR: S3) answers with a redirect; one is
        followed, to https only and without the credentials, within the same deadline and size
        bound: the blob is checked against its digest wherever it came from.
        """
        if ":" not in digest:
            raise RegistryProtocolError(str(reference), f"{digest[:80]!r} is not a digest")
        path = f"/v2/{reference.path}/blobs/{digest}"
        return self._get_content(
            reference, path, digest, "*/*", credentials, time_left, follow_redirect=True
        )

    def _get_content(
        self,
        reference: ImageReference,
        path: str,
        expected: str | None,
        accept: str,
        credentials: Credentials | None,
        time_left: float | None = None,
        *,
        follow_redirect: bool = False,
    ) -> Fetched | None:
        image = str(reference)
        if expected is not None and ":" in expected:
            if not CONTENT_DIGEST_RE.fullmatch(expected):
                raise RegistryProtocolError(image, f"{expected[:80]!r} is not a digest")
        elif expected is not None:
            if not TAG_RE.fullmatch(expected):
                raise RegistryProtocolError(image, f"{expected[:80]!r} is not a tag")
            expected = None
        deadline = self._deadline(image, time_left)
        host, port = self._api_host(reference)
        with self._transport_errors(image, deadline):
            answer = self._manifest_head(
                host, port, path, reference, credentials, deadline, method="GET", accept=accept
            )
            if follow_redirect and answer.status in REDIRECTS:
                answer = self._follow(answer, host, port, image, deadline)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise error_for_status(answer.status, image, authenticated=credentials is not None)
        digest = _digest_of(answer.body, expected or "sha256:")
        if expected is not None and digest != expected:
            raise RegistryProtocolError(image, f"content does not hash to {expected}")
        header = answer.headers.get("Docker-Content-Digest")
        manifest_by_tag = expected is None and "/manifests/" in path
        if (
            manifest_by_tag
            and header is not None
            and (content_digest(header, image) != _digest_of(answer.body, header))
        ):
            raise RegistryProtocolError(image, "content does not hash to its digest header")
        media_type = (answer.headers.get("Content-Type") or "").split(";")[0].strip()
        return Fetched(digest, media_type or None, answer.body)

    def _follow(
        self, answer: Answer, host: str, port: int, image: str, deadline: Deadline
    ) -> Answer:
        """GET where a redirect points (https only, no credentials): one hop, no more."""
        location = answer.headers.get("Location") or ""
        target = urllib.parse.urlsplit(urllib.parse.urljoin(f"https://{host}:{port}/", location))
        if target.scheme != "https" or not target.hostname:
            raise RegistryProtocolError(
                image, f"HTTP {answer.status} to a location that is not https"
            )
        path = target.path or "/"
        if target.query:
            path = f"{path}?{target.query}"
        where = (target.hostname, target.port or 443)
        return self._exchange(where, "GET", path, {"Accept": "*/*"}, deadline)

    def cache_key(self, reference: ImageReference, credentials: Credentials | None) -> str:
        """The image, and whose answer it was: an answer given to one set of credentials is
        never served to another (nor to anonymous). The credentials enter as a keyed hash, so
        the cache holds no password (the memo of keys holds the caller's Credentials objects,
        no copy of them)."""
        memo = (reference, credentials)
        with self._whos_lock:
            key = self._keys.get(memo)
        if key is None:
            key = f"{reference.registry}/{reference.path}:{reference.tag} {self._who(credentials)}"
            with self._whos_lock:
                self._keys[memo] = key
                while len(self._keys) > CACHE_KEYS_MAX:
                    self._keys.popitem(last=False)
        return key

    def _who(self, credentials: Credentials | None) -> str:
        """Whose answer: "anonymous", or a keyed hash of the credentials (never the password)."""
        if credentials is None:
            return "anonymous"
        # Kept per Credentials value (the object itself is the key: no new copy of a password).
        with self._whos_lock:
            who = self._whos.get(credentials)
        if who is None:
            secret = f"{credentials.username}\0{credentials.password}".encode()
            who = hmac.new(self._cache_salt, secret, hashlib.sha256).hexdigest()[:32]
            with self._whos_lock:
                self._whos[credentials] = who
                while len(self._whos) > WHO_MAX:
                    self._whos.popitem(last=False)
        return who

    def _exchange(
        self,
        endpoint: Endpoint,
        method: str,
        target: str,
        headers: Mapping[str, str],
        deadline: Deadline,
    ) -> Answer:
        """One request on a kept connection to ``endpoint`` (or a new one), fully read."""
        return self.pool.exchange(
            endpoint,
            method,
            target,
            headers,
            deadline=deadline,
            limit=self._config.max_response_bytes,
            send=request,
        )

    def _api_host(self, reference: ImageReference) -> tuple[str, int]:
        domain = self._config.api_hosts.get(reference.registry, reference.domain)
        host, port = split_port(domain)
        if host.startswith("["):
            host = host[1:-1]
        return host, int(port) if port else 443


def _tls_detail(error: Exception) -> str:
    """A TLS failure's reason (certificate names are the registry's, never a secret)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return error.verify_message or "certificate verification failed"
    reason = getattr(error, "reason", None)
    return str(reason) if reason else type(error).__name__
