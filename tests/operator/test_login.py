"""kopf's login gets exactly the credentials our own client uses: the bare token, whichever
loader produced the configuration (the in-cluster one writes "bearer <token>" in lower case,
which once reached kopf as "Bearer bearer …" and was refused on a real node)."""

from __future__ import annotations

from pathlib import Path

import kubernetes
import pytest
from kubernetes.config.incluster_config import InClusterConfigLoader

from mamori_dev.localca import LocalCA
from mamori_operator.handlers.lifecycle import connection_info

TOKEN = "eyJhbGciOiJSUzI1NiJ9.payload.signature"


def test_in_cluster_credentials_give_the_bare_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file, ca_file = tmp_path / "token", tmp_path / "ca.crt"
    token_file.write_text(TOKEN)
    ca_file.write_bytes(LocalCA("login-test").certificate_pem)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    configuration = kubernetes.client.Configuration()
    InClusterConfigLoader(token_filename=str(token_file), cert_filename=str(ca_file)).load_and_set(
        configuration
    )

    info = connection_info(configuration)

    assert (info.scheme, info.token) == ("Bearer", TOKEN)
    assert info.server == "https://10.0.0.1:443"
    assert info.ca_path == str(ca_file)


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [
        pytest.param({"authorization": f"bearer {TOKEN}"}, TOKEN, id="in-cluster, lower case"),
        pytest.param({"authorization": f"Bearer {TOKEN}"}, TOKEN, id="kubeconfig, capitalised"),
        pytest.param({"BearerToken": f"Bearer  {TOKEN} "}, TOKEN, id="extra spaces"),
        pytest.param({"authorization": TOKEN}, TOKEN, id="no scheme"),
        pytest.param({}, None, id="client certificate only"),
    ],
)
def test_token_forms(api_key: dict[str, str], expected: str | None) -> None:
    configuration = kubernetes.client.Configuration(host="https://127.0.0.1:6443")
    configuration.api_key = api_key

    info = connection_info(configuration)

    assert info.token == expected
    assert info.scheme == ("Bearer" if expected else None)
