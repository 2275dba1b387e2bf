"""Pull Secrets read into a keyring, and an image's credentials picked the kubelet's way: the
entry forms kubectl and docker write, host/port/path/wildcard matching, the most specific entry
winning, the order of the pod's Secrets, the configured Secret and a token provider, and errors
that name the Secret and entry and never a password. Against a real registry:
tests/integration/test_registry_credentials.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import pytest

from mamori.images import ImageReference
from mamori.supplychain.credentials import (
    DOCKER_CFG_KEY,
    DOCKER_CONFIG_JSON_KEY,
    IDENTITY_TOKEN_USERNAME,
    CredentialSource,
    Keyring,
    MalformedPullSecret,
    TokenProviderError,
    parse_registry_key,
)
from mamori.supplychain.registry import Credentials

PASSWORD = "pa55-w0rd-never-shown"
SECRET = 'Secret "team/regcred"'


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def docker_registry_secret(server: str, username: str, password: str) -> dict[str, bytes]:
    """The data of ``kubectl create secret docker-registry --docker-server … --docker-username …
    --docker-password …`` (kubectl writes username, password and auth)."""
    entry = {"username": username, "password": password, "auth": b64(f"{username}:{password}")}
    return {DOCKER_CONFIG_JSON_KEY: json.dumps({"auths": {server: entry}}).encode()}


def config_json(auths: Mapping[str, object]) -> dict[str, bytes]:
    return {DOCKER_CONFIG_JSON_KEY: json.dumps({"auths": auths}).encode()}


def keyring(*entries: tuple[str, str]) -> Keyring:
    """One Secret whose entries are (registry key, user name)."""
    auths = {key: {"auth": b64(f"{user}:{PASSWORD}")} for key, user in entries}
    return Keyring.from_secret_data(config_json(auths), secret=SECRET)


def user_for(ring: Keyring, image: str) -> str | None:
    found = ring.for_image(image)
    return None if found is None else found.username


# --- entry forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            docker_registry_secret("registry.example", "robot", PASSWORD),
            Credentials("robot", PASSWORD),
            id="kubectl-create-secret-docker-registry",
        ),
        pytest.param(
            config_json({"registry.example": {"auth": b64(f"robot:{PASSWORD}")}}),
            Credentials("robot", PASSWORD),
            id="auth-only",
        ),
        pytest.param(
            config_json({"registry.example": {"auth": b64("robot:with:colons")}}),
            Credentials("robot", "with:colons"),
            id="password-with-colons",
        ),
        pytest.param(
            config_json({"registry.example": {"username": "robot", "password": PASSWORD}}),
            Credentials("robot", PASSWORD),
            id="username-and-password",
        ),
        pytest.param(
            config_json(
                {
                    "registry.example": {
                        "username": "ignored",
                        "password": "ignored",
                        "auth": b64(f"robot:{PASSWORD}"),
                    }
                }
            ),
            Credentials("robot", PASSWORD),
            id="auth-wins-over-username-and-password",
        ),
        pytest.param(
            config_json({"registry.example": {"identitytoken": PASSWORD}}),
            Credentials(IDENTITY_TOKEN_USERNAME, PASSWORD),
            id="identitytoken",
        ),
        pytest.param(
            config_json({"registry.example": {"auth": b64("robot:"), "identitytoken": PASSWORD}}),
            Credentials("robot", PASSWORD),
            id="identitytoken-with-the-user-in-auth",
        ),
        pytest.param(
            {DOCKER_CFG_KEY: json.dumps({"registry.example": {"auth": b64("robot:pw")}}).encode()},
            Credentials("robot", "pw"),
            id="legacy-dockercfg",
        ),
        pytest.param(
            {
                DOCKER_CONFIG_JSON_KEY: json.dumps(
                    {"auths": {"registry.example": {"auth": b64("a:b")}}}
                )
            },
            Credentials("a", "b"),
            id="str-data",
        ),
    ],
)
def test_each_entry_form_gives_its_credentials(
    data: dict[str, bytes], expected: Credentials
) -> None:
    assert Keyring.from_secret_data(data).for_image("registry.example/team/app:1") == expected


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="empty"),
        pytest.param({"token": b"abc", "ca.crt": b"---"}, id="a-service-account-token"),
        pytest.param({DOCKER_CONFIG_JSON_KEY: b""}, id="empty-config"),
        pytest.param(config_json({}), id="no-entries"),
    ],
)
def test_data_that_holds_no_registry_entry_gives_an_empty_keyring(data: dict[str, bytes]) -> None:
    ring = Keyring.from_secret_data(data)
    assert len(ring) == 0 and ring.for_image("registry.example/app") is None


# --- matching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "image", "matches"),
    [
        pytest.param("registry.example", "registry.example/team/app:1", True, id="host"),
        pytest.param("Registry.EXAMPLE", "registry.example/app", True, id="host-any-case"),
        pytest.param("registry.example", "REGISTRY.example/app", True, id="image-any-case"),
        pytest.param("registry.example", "other.example/app", False, id="other-host"),
        pytest.param("registry.example", "registry.example:5000/app", False, id="port-differs"),
        pytest.param("registry.example:5000", "registry.example:5000/app", True, id="port"),
        pytest.param("registry.example:5000", "registry.example/app", False, id="port-missing"),
        pytest.param("https://registry.example", "registry.example/app", True, id="https-prefix"),
        pytest.param("http://registry.example/", "registry.example/app", True, id="http-prefix"),
        pytest.param("https://registry.example/v1/", "registry.example/app", True, id="v1-suffix"),
        pytest.param("registry.example/v2/", "registry.example/app", True, id="v2-suffix"),
        pytest.param("registry.example/team", "registry.example/team/app", True, id="path-prefix"),
        pytest.param("registry.example/team", "registry.example/other/app", False, id="path-other"),
        # the kubelet compares paths as strings, so team matches teamwork too
        pytest.param("registry.example/team", "registry.example/teamwork/app", True, id="string"),
        pytest.param("https://registry.example/v1/team", "registry.example/team/a", True, id="v1p"),
        pytest.param("*.registry.example", "eu.registry.example/app", True, id="wildcard"),
        pytest.param("*.registry.example", "registry.example/app", False, id="wildcard-apex"),
        pytest.param("*.registry.example", "a.b.registry.example/app", False, id="wildcard-deep"),
        pytest.param("eu-*.registry.example", "eu-west.registry.example/a", True, id="glob-label"),
        pytest.param("*.*.example", "eu.registry.example/app", True, id="two-wildcards"),
        pytest.param("127.0.0.1:5000", "127.0.0.1:5000/app", True, id="ipv4"),
        pytest.param("[::1]:5000", "[::1]:5000/app", True, id="ipv6"),
        pytest.param("docker.io", "nginx", True, id="docker-hub"),
        pytest.param("https://index.docker.io/v1/", "nginx:1.27", True, id="docker-hub-legacy"),
        pytest.param("https://index.docker.io/v1/", "team/app", True, id="docker-hub-user"),
        pytest.param("index.docker.io", "registry.example/app", False, id="hub-not-elsewhere"),
    ],
)
def test_an_entry_applies_where_the_kubelet_would_use_it(
    key: str, image: str, matches: bool
) -> None:
    assert (user_for(keyring((key, "robot")), image) == "robot") is matches


@pytest.mark.parametrize(
    ("entries", "image", "winner"),
    [
        pytest.param(
            [("registry.example", "host"), ("registry.example/team", "team")],
            "registry.example/team/app",
            "team",
            id="longer-path",
        ),
        pytest.param(
            [("registry.example/team", "team"), ("registry.example", "host")],
            "registry.example/team/app",
            "team",
            id="longer-path-given-first",
        ),
        pytest.param(
            [("registry.example/team", "team"), ("registry.example/team/app", "app")],
            "registry.example/team/app",
            "app",
            id="longest-path",
        ),
        pytest.param(
            [("*.registry.example", "wild"), ("eu.registry.example", "exact")],
            "eu.registry.example/app",
            "exact",
            id="exact-host-over-wildcard",
        ),
        pytest.param(
            [("eu.registry.example", "exact"), ("*.registry.example/team", "wild-team")],
            "eu.registry.example/team/app",
            "wild-team",
            id="path-before-wildcard",
        ),
        pytest.param(
            [("https://index.docker.io/v1/", "legacy"), ("docker.io", "hub")],
            "nginx",
            "hub",
            id="docker-io-over-the-legacy-fallback",
        ),
    ],
)
def test_the_most_specific_entry_wins(
    entries: list[tuple[str, str]], image: str, winner: str
) -> None:
    assert user_for(keyring(*entries), image) == winner


def test_merged_secrets_keep_their_order_on_a_tie_and_specificity_otherwise() -> None:
    first = keyring(("registry.example", "first"))
    second = keyring(("registry.example", "second"), ("registry.example/team", "team"))
    merged = Keyring.merged([first, second])
    assert user_for(merged, "registry.example/app") == "first"
    assert user_for(merged, "registry.example/team/app") == "team"
    assert [entry.credentials.username for entry in merged.matching("registry.example/team/x")] == [
        "team",
        "first",
        "second",
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("registry.example", ("registry.example", None, "")),
        pytest.param("https://Registry.Example:5000/v2/", ("registry.example", "5000", "")),
        pytest.param("registry.example/team/", ("registry.example", None, "/team/")),
        pytest.param("https://index.docker.io/v1/", ("index.docker.io", None, "")),
    ],
)
def test_registry_keys_are_normalized(key: str, expected: tuple[str, str | None, str]) -> None:
    assert parse_registry_key(key) == expected


# --- errors -------------------------------------------------------------------------------------


def _raw(text: str) -> dict[str, bytes]:
    return {DOCKER_CONFIG_JSON_KEY: text.encode()}


MALFORMED = [
    pytest.param(
        _raw('{"auths": {"registry.example": {"password": "' + PASSWORD + '"'),
        "key .dockerconfigjson: not JSON",
        id="truncated-json",
    ),
    pytest.param({DOCKER_CONFIG_JSON_KEY: b"\xff\xfe"}, "not UTF-8", id="not-utf-8"),
    pytest.param(_raw(f'["{PASSWORD}"]'), "not a JSON object", id="a-list"),
    pytest.param(_raw(json.dumps({"credsStore": PASSWORD})), 'no "auths" object', id="no-auths"),
    pytest.param(_raw(json.dumps({"auths": [PASSWORD]})), 'no "auths" object', id="auths-list"),
    pytest.param(
        config_json({"registry.example": PASSWORD}),
        "entry 'registry.example': not an object",
        id="entry-a-string",
    ),
    pytest.param(
        config_json({"registry.example": {"auth": PASSWORD + "!"}}),
        "entry 'registry.example': auth is not base64",
        id="auth-not-base64",
    ),
    pytest.param(
        config_json({"registry.example": {"auth": b64(PASSWORD)}}),
        "entry 'registry.example': auth is not base64",
        id="auth-without-colon",
    ),
    pytest.param(
        config_json({"registry.example": {"username": "robot", "password": 12345}}),
        "entry 'registry.example': password is not a string",
        id="password-a-number",
    ),
    pytest.param(
        config_json({"registry.example": {"auth": b64(f":{PASSWORD}")}}),
        "entry 'registry.example': no auth, username and password, or identitytoken",
        id="empty-username",
    ),
    pytest.param(
        config_json({"registry.example": {"email": "a@registry.example"}}),
        "entry 'registry.example': no auth, username and password, or identitytoken",
        id="email-only",
    ),
    pytest.param(
        config_json({"https://": {"auth": b64(f"u:{PASSWORD}")}}),
        "entry 'https://': not a registry host",
        id="no-host",
    ),
    pytest.param(
        config_json({"registry.example:https": {"auth": b64(f"u:{PASSWORD}")}}),
        "entry 'registry.example:https': not a registry host",
        id="port-not-a-number",
    ),
    pytest.param(
        config_json({f"robot:{PASSWORD}@registry.example": {"auth": b64(f"u:{PASSWORD}")}}),
        "entry '…@registry.example': not a registry host",
        id="userinfo-in-the-key-is-not-quoted",
    ),
    pytest.param(
        {DOCKER_CFG_KEY: json.dumps([PASSWORD]).encode()},
        "key .dockercfg: not a JSON object",
        id="legacy-not-an-object",
    ),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_data_is_a_value_error_naming_the_secret_key_and_entry_never_the_password(
    data: dict[str, bytes], message: str
) -> None:
    with pytest.raises(MalformedPullSecret) as refused:
        Keyring.from_secret_data(data, secret=SECRET)
    assert isinstance(refused.value, ValueError)
    text = str(refused.value)
    assert text.startswith(f"{SECRET} key ."), text
    assert message in text
    everything = f"{text} {refused.value!r} {refused.value.__cause__!r} {refused.value.__context__}"
    assert PASSWORD not in everything and b64(PASSWORD)[:12] not in everything


def test_no_repr_shows_a_password() -> None:
    ring = Keyring.from_secret_data(docker_registry_secret("registry.example", "u", PASSWORD))
    texts = [repr(ring), repr(ring.entries), str(ring.entries[0])]
    assert all(PASSWORD not in text for text in texts)
    assert "registry.example" in repr(ring)


# --- the composition admission calls -------------------------------------------------------------


class CountingProvider:
    """A token provider for registry.example/ecr-like images; counts its calls."""

    def __init__(self, *, fail: bool = False) -> None:
        self.asked: list[str] = []
        self.fail = fail

    def __call__(self, reference: ImageReference) -> Credentials | None:
        self.asked.append(str(reference))
        if self.fail:
            raise TokenProviderError(f"token for {reference.registry}: refused")
        if reference.hostname != "tokens.registry.example":
            return None
        return Credentials("AWS", "minted")


def _secret(server: str, user: str) -> dict[str, bytes]:
    return docker_registry_secret(server, user, PASSWORD)


@pytest.mark.parametrize(
    ("image", "pull_secrets", "expected_user", "provider_asked"),
    [
        pytest.param(
            "registry.example/app",
            [_secret("registry.example", "pod-first"), _secret("registry.example", "pod-second")],
            "pod-first",
            False,
            id="first-pull-secret-on-a-tie",
        ),
        pytest.param(
            "registry.example/team/app",
            [_secret("registry.example", "pod-host"), _secret("registry.example/team", "team")],
            "team",
            False,
            id="most-specific-pull-secret",
        ),
        pytest.param(
            "registry.example/team/app",
            [_secret("registry.example", "pod")],
            "pod",
            False,
            id="pull-secret-before-configured-even-if-less-specific",
        ),
        pytest.param(
            "registry.example/team/app",
            [_secret("other.example", "pod")],
            "configured",
            False,
            id="configured-when-no-pull-secret-applies",
        ),
        pytest.param(
            "tokens.registry.example/app", [], "AWS", True, id="provider-when-no-secret-applies"
        ),
        pytest.param(
            "tokens.registry.example/app",
            [_secret("tokens.registry.example", "pod")],
            "pod",
            False,
            id="pull-secret-before-provider",
        ),
        pytest.param("elsewhere.example/app", [], None, True, id="anonymous"),
    ],
)
def test_credential_source_tries_the_pod_then_the_configured_secret_then_the_provider(
    image: str,
    pull_secrets: list[dict[str, bytes]],
    expected_user: str | None,
    provider_asked: bool,
) -> None:
    configured = Keyring.from_secret_data(_secret("registry.example/team", "configured"))
    provider = CountingProvider()
    source = CredentialSource(configured=configured, token_provider=provider)
    found = source.credentials_for(image, pull_secrets)
    assert (found.username if found else None) == expected_user
    assert bool(provider.asked) is provider_asked


def test_credential_source_without_a_provider_or_secrets_is_anonymous() -> None:
    assert CredentialSource().credentials_for("registry.example/app") is None


def test_a_malformed_pull_secret_is_named_by_its_place_and_name() -> None:
    broken = config_json({"registry.example": {"auth": "%%%"}})
    source = CredentialSource()
    with pytest.raises(MalformedPullSecret, match=r'imagePullSecrets\[1\] Secret "broken" key'):
        source.credentials_for(
            "registry.example/app",
            [_secret("other.example", "ok"), broken],
            pull_secret_names=["fine", "broken"],
        )


def test_a_provider_failure_reaches_the_caller() -> None:
    source = CredentialSource(token_provider=CountingProvider(fail=True))
    with pytest.raises(TokenProviderError, match=r"tokens\.registry\.example: refused"):
        source.credentials_for("tokens.registry.example/app")
