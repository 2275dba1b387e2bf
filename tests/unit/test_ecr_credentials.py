"""ECR registry tokens for admission, against moto in server mode on loopback with IAM deciding:
real HTTP, signed requests, a real AccessDenied. The token is the one moto issues for the
image's account; it is kept per (account, region) until five minutes before ``expiresAt`` and
no longer; failures name the registry and never a secret. No cluster: a loopback port only.
"""

from __future__ import annotations

import base64
import datetime
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mamori.images import parse_reference
from mamori.supplychain.credentials import CredentialSource, TokenProviderError
from mamori.supplychain.ecr_tokens import (
    EcrCredentialsConfig,
    EcrTokenError,
    EcrTokenProvider,
    credentials_from_answer,
)
from mamori.supplychain.registry import Credentials
from tests.aws_support import AccessKey, MotoServer, moto_server

REGION = "us-east-1"
ACCOUNT, OTHER_ACCOUNT, THIRD_ACCOUNT = "123456789012", "210987654321", "111122223333"
# moto dates every token 2015-01-01T00:00:00Z; the tests' clock stands before or after it
MOTO_EXPIRES = datetime.datetime(2015, 1, 1, tzinfo=datetime.UTC).timestamp()
REFRESH_BEFORE = 300.0


def ecr_image(account: str = ACCOUNT, region: str = REGION, suffix: str = "amazonaws.com") -> str:
    return f"{account}.dkr.ecr.{region}.{suffix}/team/app:1.0"


@dataclass(frozen=True)
class Moto:
    server: MotoServer
    puller: AccessKey
    stranger: AccessKey  # may do anything in ECR but get a token


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log, region=REGION) as server:
        puller = server.create_user("webhook", allow=["ecr:GetAuthorizationToken"])
        stranger = server.create_user(
            "stranger", allow=["ecr:*"], deny=["ecr:GetAuthorizationToken"]
        )
        server.enforce_iam()
        yield Moto(server, puller, stranger)


@dataclass
class Calls:
    """GetAuthorizationToken calls as boto3 made them: (region, registryIds)."""

    made: list[tuple[str, list[str]]] = field(default_factory=list)

    def record(self, params: dict[str, Any], model: Any, context: Any, **_: Any) -> None:
        self.made.append((context["client_region"], list(params.get("registryIds", []))))


class WallClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    provider: EcrTokenProvider
    calls: Calls
    clock: WallClock


def make_provider(
    moto: Moto,
    *,
    key: AccessKey | None = None,
    now: float = MOTO_EXPIRES - 3600,
    endpoint_url: str | None = None,
    **settings: Any,
) -> Setup:
    """A provider that asks moto as ``key`` (the puller), on a clock standing at ``now``."""
    calls = Calls()
    session = moto.server.session(key or moto.puller)
    session.events.register("provide-client-params.ecr.GetAuthorizationToken", calls.record)
    clock = WallClock(now)
    config = EcrCredentialsConfig(
        endpoint_url=endpoint_url or moto.server.url, refresh_before=REFRESH_BEFORE, **settings
    )
    return Setup(EcrTokenProvider(config, session=session, clock=clock), calls, clock)


def _ask(setup: Setup, image: str) -> Credentials | None:
    return setup.provider(parse_reference(image))


def test_an_ecr_image_gets_the_token_moto_issues_for_its_account(moto: Moto) -> None:
    setup = make_provider(moto)
    assert _ask(setup, ecr_image()) == Credentials("AWS", f"{ACCOUNT}-auth-token")
    assert _ask(setup, ecr_image(OTHER_ACCOUNT, "eu-west-1")) == Credentials(
        "AWS", f"{OTHER_ACCOUNT}-auth-token"
    )
    assert setup.calls.made == [(REGION, [ACCOUNT]), ("eu-west-1", [OTHER_ACCOUNT])]


def test_a_china_region_registry_is_asked_in_its_region(moto: Moto) -> None:
    # the users live in the aws partition; aws-cn (like AWS) does not know their keys
    setup = make_provider(moto)
    image = ecr_image(region="cn-north-1", suffix="amazonaws.com.cn")
    with pytest.raises(EcrTokenError, match=r"\.dkr\.ecr\.cn-north-1\.amazonaws\.com\.cn: "):
        _ask(setup, image)
    assert setup.calls.made == [("cn-north-1", [ACCOUNT])]


@pytest.mark.parametrize(
    "image",
    [
        pytest.param("registry.example/team/app:1.0", id="another-registry"),
        pytest.param("nginx:1.27", id="docker-hub"),
        pytest.param(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com:443/app", id="with-a-port"),
        pytest.param(f"{ACCOUNT}.dkr.ecr.{REGION}.registry.example/app", id="lookalike-suffix"),
        pytest.param(f"1234.dkr.ecr.{REGION}.amazonaws.com/app", id="short-account"),
    ],
)
def test_other_images_get_nothing_and_ecr_is_not_asked(moto: Moto, image: str) -> None:
    setup = make_provider(moto)
    assert _ask(setup, image) is None
    assert setup.calls.made == []


@pytest.mark.parametrize(
    ("later", "asked_again"),
    [
        pytest.param(MOTO_EXPIRES - REFRESH_BEFORE - 1, False, id="kept-until-5-minutes-before"),
        pytest.param(MOTO_EXPIRES - REFRESH_BEFORE, True, id="renewed-5-minutes-before"),
        pytest.param(MOTO_EXPIRES + 1, True, id="renewed-after-expiry"),
    ],
)
def test_a_token_is_kept_per_account_and_region_until_five_minutes_before_it_expires(
    moto: Moto, later: float, asked_again: bool
) -> None:
    setup = make_provider(moto, now=MOTO_EXPIRES - 3600)
    first = _ask(setup, ecr_image())
    assert _ask(setup, ecr_image().replace("team/app", "other/repo")) == first
    setup.clock.now = later
    assert _ask(setup, ecr_image()) == first
    assert len(setup.calls.made) == (2 if asked_again else 1)


def test_tokens_of_other_accounts_and_regions_are_kept_apart(moto: Moto) -> None:
    setup = make_provider(moto)
    images = [ecr_image(), ecr_image(OTHER_ACCOUNT), ecr_image(region="eu-west-1")]
    for image in images * 2:
        _ask(setup, image)
    assert setup.calls.made == [
        (REGION, [ACCOUNT]),
        (REGION, [OTHER_ACCOUNT]),
        ("eu-west-1", [ACCOUNT]),
    ]


def test_a_token_already_inside_its_margin_is_used_but_not_kept(moto: Moto) -> None:
    setup = make_provider(moto, now=MOTO_EXPIRES - REFRESH_BEFORE)
    for _ in range(2):
        assert _ask(setup, ecr_image()) == Credentials("AWS", f"{ACCOUNT}-auth-token")
    assert len(setup.calls.made) == 2


def test_the_kept_tokens_are_bounded(moto: Moto) -> None:
    setup = make_provider(moto, max_entries=2)
    for account in (ACCOUNT, OTHER_ACCOUNT, THIRD_ACCOUNT, ACCOUNT):
        _ask(setup, ecr_image(account))
    assert [ids for _, ids in setup.calls.made] == [
        [ACCOUNT],
        [OTHER_ACCOUNT],
        [THIRD_ACCOUNT],
        [ACCOUNT],  # the least recently used went first
    ]


def test_access_denied_names_the_registry_and_the_code_and_no_secret(
    moto: Moto, caplog: pytest.LogCaptureFixture
) -> None:
    setup = make_provider(moto, key=moto.stranger)
    caplog.set_level(logging.DEBUG, logger="mamori")
    with pytest.raises(EcrTokenError) as refused:
        _ask(setup, ecr_image())
    message = str(refused.value)
    assert isinstance(refused.value, TokenProviderError)
    assert f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com" in message
    assert "was refused: (HTTP 403)" in message  # moto says AccessDenied in XML, AWS in JSON
    assert "needs ecr:GetAuthorizationToken" in message
    everything = f"{message} {refused.value!r} {refused.value.__cause__} {caplog.text}"
    assert moto.stranger.secret not in everything and moto.stranger.id not in everything


def _closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_endpoint_is_a_clear_error_naming_the_registry(moto: Moto) -> None:
    endpoint = f"http://127.0.0.1:{_closed_loopback_port()}"
    setup = make_provider(moto, endpoint_url=endpoint, max_attempts=1, connect_timeout=0.5)
    with pytest.raises(EcrTokenError, match="GetAuthorizationToken failed") as refused:
        _ask(setup, ecr_image())
    assert f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com" in str(refused.value)
    assert "EndpointConnectionError" in str(refused.value)


def test_the_provider_plugs_into_the_credential_source(moto: Moto) -> None:
    source = CredentialSource(token_provider=make_provider(moto).provider)
    assert source.credentials_for(ecr_image()) == Credentials("AWS", f"{ACCOUNT}-auth-token")
    assert source.credentials_for("registry.example/team/app:1.0") is None


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"refresh_before": -1}, id="negative-margin"),
        pytest.param({"max_entries": -1}, id="negative-bound"),
        pytest.param({"connect_timeout": 0}, id="zero-connect-timeout"),
        pytest.param({"read_timeout": -1}, id="negative-read-timeout"),
        pytest.param({"max_attempts": 0}, id="no-attempts"),
    ],
)
def test_config_refuses_nonsense(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EcrCredentialsConfig(**settings)  # type: ignore[arg-type]


EXPIRES_AT = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


def _answer(token: object, expires: object = EXPIRES_AT) -> dict[str, Any]:
    return {"authorizationData": [{"authorizationToken": token, "expiresAt": expires}]}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({}, id="no-authorization-data"),
        pytest.param({"authorizationData": []}, id="empty-authorization-data"),
        pytest.param(_answer(None), id="no-token"),
        pytest.param(_answer("not base64!"), id="not-base64"),
        pytest.param(_answer(base64.b64encode(b"AWS-no-colon").decode()), id="no-colon"),
        pytest.param(_answer(base64.b64encode(b"AWS:").decode()), id="empty-password"),
        pytest.param(_answer(base64.b64encode(b"AWS:pw").decode(), None), id="no-expiry"),
    ],
)
def test_an_answer_without_a_usable_token_is_a_clear_error(answer: dict[str, Any]) -> None:
    with pytest.raises(EcrTokenError, match=r"registry\.example: GetAuthorizationToken gave no"):
        credentials_from_answer(answer, "registry.example")


def test_an_answer_gives_the_password_and_the_expiry() -> None:
    answer = _answer(base64.b64encode(b"AWS:pa:ss").decode())
    assert credentials_from_answer(answer, "r") == (
        Credentials("AWS", "pa:ss"),
        EXPIRES_AT.timestamp(),
    )
