"""Pull Secrets as a cluster has them, against a real registry (distribution, TLS, htpasswd).

A ``kubernetes.io/dockerconfigjson`` Secret built the way ``kubectl create secret
docker-registry`` builds it gives the credentials that make the tag resolve; a wrong one is
refused with an error that names the image; a configured Secret answers when the pod's do not
apply. The password appears in no error and no log record, whatever goes wrong.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator, Mapping

import pytest

from mamori.supplychain.credentials import (
    DOCKER_CONFIG_JSON_KEY,
    CredentialSource,
    Keyring,
    MalformedPullSecret,
)
from mamori.supplychain.registry import (
    RegistryClient,
    RegistryClientConfig,
    RegistryError,
    Unauthorized,
)
from tests.integration.registry_support import (
    TestRegistry,
    free_loopback_port,
    running_registry,
)

pytestmark = pytest.mark.integration

REPOSITORY, TAG = "demo/pulled", "v1"


def docker_registry_secret(server: str, username: str, password: str) -> dict[str, bytes]:
    """The data of ``kubectl create secret docker-registry --docker-server=<server>
    --docker-username=<username> --docker-password=<password>`` (base64-decoded, as the API
    server's ``data`` decodes)."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    entry = {"username": username, "password": password, "auth": auth}
    return {DOCKER_CONFIG_JSON_KEY: json.dumps({"auths": {server: entry}}).encode()}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def digest(registry: TestRegistry) -> str:
    return registry.push_image(REPOSITORY, TAG, "pulled with a pull Secret")


@pytest.fixture
def client(registry: TestRegistry) -> RegistryClient:
    return RegistryClient(RegistryClientConfig(ssl_context=registry.ssl_context(), deadline=2.0))


def _resolve(
    client: RegistryClient,
    image: str,
    pull_secrets: list[Mapping[str, bytes]],
    source: CredentialSource | None = None,
) -> str:
    credentials = (source or CredentialSource()).credentials_for(image, pull_secrets)
    return client.resolve(image, credentials=credentials).digest


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("{address}", id="host-port"),
        pytest.param("https://{address}", id="https-prefix"),
        pytest.param("https://{address}/v1/", id="v1-suffix"),
        pytest.param("{address}/demo", id="path-prefix"),
    ],
)
def test_a_kubectl_docker_registry_secret_makes_the_tag_resolve(
    registry: TestRegistry, digest: str, client: RegistryClient, server: str
) -> None:
    secret = docker_registry_secret(
        server.format(address=registry.address), registry.username, registry.password
    )
    image = f"{registry.address}/{REPOSITORY}:{TAG}"
    assert _resolve(client, image, [secret]) == digest == registry.digest(REPOSITORY, TAG)


def test_the_configured_secret_answers_when_no_pull_secret_applies(
    registry: TestRegistry, digest: str, client: RegistryClient
) -> None:
    configured = Keyring.from_secret_data(
        docker_registry_secret(registry.address, registry.username, registry.password),
        secret='Secret "mamori/registry-credentials"',
    )
    elsewhere = docker_registry_secret("registry.example", "someone", "else")
    image = f"{registry.address}/{REPOSITORY}:{TAG}"
    source = CredentialSource(configured=configured)
    assert _resolve(client, image, [elsewhere], source) == digest


def test_no_applicable_secret_is_anonymous_and_refused(
    registry: TestRegistry, digest: str, client: RegistryClient
) -> None:
    image = f"{registry.address}/{REPOSITORY}:{TAG}"
    elsewhere = docker_registry_secret(f"{registry.address}/other", "u", registry.password)
    with pytest.raises(Unauthorized, match="without credentials"):
        _resolve(client, image, [elsewhere])


WRONG_PASSWORD = "wr0ng-but-still-secret"


def test_a_wrong_password_is_unauthorized_naming_the_image_and_never_a_password(
    registry: TestRegistry, digest: str, client: RegistryClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    image = f"{registry.address}/{REPOSITORY}:{TAG}"
    wrong = docker_registry_secret(registry.address, registry.username, WRONG_PASSWORD)
    with pytest.raises(Unauthorized) as refused:
        _resolve(client, image, [wrong])
    assert image in str(refused.value)
    _assert_never_shown(refused.value, caplog, registry.password, WRONG_PASSWORD)


@pytest.mark.parametrize(
    "failure",
    ["resolved", "unauthorized", "not-found", "unreachable", "malformed-secret"],
)
def test_the_password_appears_in_no_error_and_no_log_record(
    registry: TestRegistry,
    digest: str,
    client: RegistryClient,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    good = docker_registry_secret(registry.address, registry.username, registry.password)
    image = f"{registry.address}/{REPOSITORY}:{TAG}"
    secrets: list[Mapping[str, bytes]] = [good]
    if failure == "unauthorized":
        secrets = [docker_registry_secret(registry.address, registry.username, WRONG_PASSWORD)]
    elif failure == "not-found":
        image = f"{registry.address}/{REPOSITORY}:missing"
    elif failure == "unreachable":
        image = f"127.0.0.1:{free_loopback_port()}/{REPOSITORY}:{TAG}"
        secrets = [docker_registry_secret(image.split("/")[0], "u", registry.password)]
    elif failure == "malformed-secret":
        secrets = [{DOCKER_CONFIG_JSON_KEY: good[DOCKER_CONFIG_JSON_KEY][:-3]}]
    error: Exception | None = None
    try:
        _resolve(client, image, secrets)
    except (RegistryError, MalformedPullSecret) as raised:
        error = raised
    assert (error is None) is (failure == "resolved"), error
    _assert_never_shown(error, caplog, registry.password, WRONG_PASSWORD)


def _assert_never_shown(
    error: BaseException | None, caplog: pytest.LogCaptureFixture, *secrets: str
) -> None:
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), repr(record.__dict__)]
    chained: BaseException | None = error
    while chained is not None:
        texts += [str(chained), repr(chained), repr(chained.args)]
        chained = chained.__cause__ or chained.__context__
    encoded = [base64.b64encode(secret.encode()).decode()[:12] for secret in secrets]
    for text in texts:
        for secret in (*secrets, *encoded):
            assert secret not in text
