"""Amazon ECR registry credentials: a token from GetAuthorizationToken, for whoever asks registries.

A private ECR registry has no standing password: a caller with ``ecr:GetAuthorizationToken``
gets a token, valid for hours, that the registry accepts as the password of user ``AWS``. The
kubelet gets one the same way (its ECR credential provider) to pull; the webhook gets one to
resolve and verify the image it is about to admit, the operator's audit one to verify what runs.
:class:`EcrTokenProvider` is the token provider of
:class:`mamori.supplychain.credentials.CredentialSource` for both deployables.

The image host names the registry (``<account>.dkr.ecr.<region>.amazonaws.com``, China and the
other partitions as :func:`mamori.images.parse_ecr_host` knows them). Tokens are kept per
(account, region) until a margin before they expire, in a bounded cache. The call itself is a
:data:`TokenFetch`: by default :class:`BotoTokenFetch`, which imports boto3 only when it first
builds a client, so the core loads no cloud SDK until a process asks ECR (``mamori check``
without ECR images never does). AWS credentials come from the boto3 session given (by default
boto3's chain: IRSA, EKS Pod Identity); the endpoint and timeouts from
:class:`EcrCredentialsConfig`. Callers wait on the call, so timeouts are short and retries few.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from mamori.images import EcrHost, ImageReference, parse_ecr_host
from mamori.supplychain.credentials import TokenProviderError
from mamori.supplychain.registry import Credentials


class EcrTokenError(TokenProviderError):
    """GetAuthorizationToken failed; the message names the registry and the error code only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EcrCredentialsConfig:
    """How a process asks ECR for registry tokens; built once from its settings.

    ``endpoint_url`` overrides the ECR API endpoint (a VPC endpoint, or a local test server).
    ``refresh_before`` (seconds) is how long before ``expiresAt`` a kept token is replaced;
    ``max_entries`` bounds the (account, region) tokens kept. ``connect_timeout``,
    ``read_timeout`` and ``max_attempts`` bound one GetAuthorizationToken call: the caller
    waits for it. ``identity`` names the caller in a refusal ("the webhook", "the operator"):
    whose AWS role lacks the permission.
    """

    endpoint_url: str | None = None
    refresh_before: float = 300.0
    max_entries: int = 64
    connect_timeout: float = 2.0
    read_timeout: float = 3.0
    max_attempts: int = 2
    identity: str = "the webhook"

    def __post_init__(self) -> None:
        if self.refresh_before < 0 or self.max_entries < 0:
            raise ValueError("refresh_before and max_entries must not be negative")
        if not (self.connect_timeout > 0 and self.read_timeout > 0 and self.max_attempts >= 1):
            raise ValueError("timeouts must be positive and max_attempts at least 1")


class EcrToken(NamedTuple):
    """Registry credentials from ECR and when they expire (seconds since the epoch)."""

    credentials: Credentials
    expires_at: float


TokenFetch = Callable[[EcrHost, str], EcrToken]
"""(the registry's host, its name for messages) → a fresh token; raises :class:`EcrTokenError`."""


class EcrTokenProvider:
    """ECR registry credentials for images on private ECR hosts; None for any other image.

    One per process, shared by threads. ``clock`` is wall-clock time (seconds since the epoch),
    since ECR says when a token expires as a date. ``fetch`` asks ECR (default: boto3, with
    ``session``).
    """

    def __init__(
        self,
        config: EcrCredentialsConfig | None = None,
        *,
        session: Any = None,
        fetch: TokenFetch | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config or EcrCredentialsConfig()
        self._fetch = fetch or BotoTokenFetch(self._config, session=session)
        self._clock = clock
        self._kept: OrderedDict[tuple[str, str], EcrToken] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, reference: ImageReference) -> Credentials | None:
        host = parse_ecr_host(reference.hostname) if reference.port is None else None
        if host is None:
            return None
        key = (host.account_id, host.region)
        margin = self._config.refresh_before
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and self._clock() < kept.expires_at - margin:
                self._kept.move_to_end(key)
                return kept.credentials
        token = self._fetch(host, reference.hostname)
        if self._config.max_entries and token.expires_at - margin > self._clock():
            with self._lock:
                self._kept[key] = token
                self._kept.move_to_end(key)
                while len(self._kept) > self._config.max_entries:
                    self._kept.popitem(last=False)
        return token.credentials


class BotoTokenFetch:
    """GetAuthorizationToken through boto3: one client per (region, FIPS, dual-stack), made on
    first use; botocore's errors become :class:`EcrTokenError` naming the registry only."""

    def __init__(self, config: EcrCredentialsConfig, *, session: Any = None) -> None:
        self._config = config
        self._session = session
        self._clients: dict[tuple[str, bool, bool], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, host: EcrHost, registry: str) -> EcrToken:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client(host).get_authorization_token(registryIds=[host.account_id])
        except ClientError as error:
            raise EcrTokenError(
                refusal(error.response, registry, identity=self._config.identity)
            ) from None
        except BotoCoreError as error:  # no AWS credentials, endpoint unreachable, timeout
            raise EcrTokenError(
                f"Amazon ECR registry {registry}: GetAuthorizationToken failed "
                f"({type(error).__name__})"
            ) from None
        return credentials_from_answer(answer, registry)

    def _client(self, host: EcrHost) -> Any:
        import boto3
        from botocore.config import Config

        flavour = (host.region, host.fips, host.dual_stack)
        custom_endpoint = self._config.endpoint_url is not None
        with self._lock:
            client = self._clients.get(flavour)
            if client is None:
                config = Config(
                    retries={"mode": "standard", "max_attempts": self._config.max_attempts},
                    connect_timeout=self._config.connect_timeout,
                    read_timeout=self._config.read_timeout,
                    use_fips_endpoint=host.fips and not custom_endpoint,
                    use_dualstack_endpoint=host.dual_stack and not custom_endpoint,
                )
                session = self._session or boto3.session.Session()
                client = session.client(
                    "ecr",
                    region_name=host.region,
                    endpoint_url=self._config.endpoint_url,
                    config=config,
                )
                self._clients[flavour] = client
            return client


def refusal(response: Any, registry: str, *, identity: str = "the webhook") -> str:
    """What ECR said, by its error code and HTTP status (the message may quote identities)."""
    response = response if isinstance(response, dict) else {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    named = f"{code} " if code and not code.isdigit() else ""
    text = f"Amazon ECR registry {registry}: GetAuthorizationToken was refused: {named}"
    text += f"(HTTP {status})"
    if status == 403 or "AccessDenied" in code:
        text += f"; {identity}'s AWS identity needs ecr:GetAuthorizationToken on this registry"
    return text


def credentials_from_answer(answer: Any, registry: str) -> EcrToken:
    """The password in ``authorizationToken`` (base64 of ``AWS:<password>``) and its expiry."""
    refused = EcrTokenError(
        f"Amazon ECR registry {registry}: GetAuthorizationToken gave no usable token"
    )
    data = answer.get("authorizationData") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise refused
    token, expires = data[0].get("authorizationToken"), data[0].get("expiresAt")
    if not isinstance(token, str) or not isinstance(expires, datetime.datetime):
        raise refused
    try:
        username, colon, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise refused from None
    if not colon or not username or not password:
        raise refused
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.UTC)
    return EcrToken(Credentials(username, password), expires.timestamp())
