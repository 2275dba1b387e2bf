"""The certificates handler inside the real operator (kopf) on the real API server: the startup
pass creates the Secrets and injects the CA, the timer keeps running, and missing RBAC stops the
operator with a message that says what to grant."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import kubernetes.client
import kubernetes.config
import pytest
import yaml

from mamori_operator.certificates.keeper import CertificateKeeper
from mamori_operator.certificates.plan import certificates_from_pem
from mamori_operator.certificates.settings import CertificateSettings
from mamori_operator.config import OperatorConfig
from mamori_operator.handlers.certificates import start_certificates
from mamori_operator.runtime import run_operator
from tests.cluster_fixtures import Kubectl
from tests.helpers import wait_for
from tests.integration.operator_support import (
    CRD_FILES,
    operator_config,
    webhook_configuration_body,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crds(kubectl: Kubectl) -> None:
    for path in CRD_FILES:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in CRD_FILES]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))


@pytest.fixture
def webhook_configuration(kubectl: Kubectl) -> Iterator[str]:
    """A webhook configuration to inject into; it selects no namespace, so it judges nothing."""
    name = f"certs-{uuid.uuid4().hex[:6]}"
    body = webhook_configuration_body(name)
    kubectl("create", "-f", "-", input=json.dumps(body))
    yield name
    kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


def secret(kube_api: kubernetes.client.ApiClient, namespace: str, name: str) -> Any:
    try:
        return kubernetes.client.CoreV1Api(kube_api).read_namespaced_secret(name, namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise


def bundles(kubectl: Kubectl, name: str) -> list[bytes]:
    body = json.loads(kubectl("get", "validatingwebhookconfiguration", name, "-o", "json").stdout)
    return [base64.b64decode(hook["clientConfig"].get("caBundle", "")) for hook in body["webhooks"]]


def test_the_operator_issues_certificates_at_startup_and_keeps_checking(
    kubeconfig: Path,
    kubectl: Kubectl,
    kube_api: kubernetes.client.ApiClient,
    crds: None,
    namespace: str,
    webhook_configuration: str,
) -> None:
    config = operator_config(kubeconfig, namespace=namespace)
    settings = CertificateSettings(
        manage_certificates=True,
        certificate_webhook_configuration=webhook_configuration,
        certificate_check_interval="1s",
    )
    memo = kopf.Memo(certificates=settings)
    stop, ready = threading.Event(), threading.Event()
    outcome: list[Any] = []

    def operate() -> None:
        try:
            outcome.append(run_operator(config, memo=memo, stop=stop, ready=ready))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=operate, name="operator-certificates", daemon=True)
    thread.start()
    try:
        wait_for(lambda: outcome or ready.is_set(), timeout=60, message="operator ready")
        assert not outcome, outcome
        keeper: CertificateKeeper = memo.certificate_keeper
        tls = secret(kube_api, namespace, settings.certificate_secret)
        ca = secret(kube_api, namespace, settings.certificate_ca_secret)
        assert tls is not None and ca is not None  # written before kopf reported ready
        bundle = base64.b64decode(tls.data["ca.crt"])
        assert len(certificates_from_pem(bundle)) == 1
        assert bundles(kubectl, webhook_configuration) == [bundle, bundle]  # every webhook
        passes = keeper.passes
        wait_for(lambda: keeper.passes >= passes + 2, timeout=15, message="two timer passes")
        assert secret(kube_api, namespace, settings.certificate_secret).data == tls.data
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    assert outcome == [0]
    timer = keeper._thread
    assert timer is not None and not timer.is_alive()  # the cleanup handler stopped it


def test_missing_rbac_stops_the_operator_with_what_to_grant(
    kubeconfig: Path, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    account = "no-rights"
    kubectl("create", "serviceaccount", account, "-n", namespace)
    token = kubectl("create", "token", account, "-n", namespace).stdout.strip()
    admin = yaml.safe_load(kubeconfig.read_text())
    cluster = admin["clusters"][0]
    restricted = tmp_path / "kubeconfig"
    restricted.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {"name": account, "context": {"cluster": cluster["name"], "user": account}}
                ],
                "current-context": account,
            }
        )
    )
    memo = kopf.Memo(
        config=OperatorConfig(kubeconfig=restricted, namespace=namespace),
        certificates=CertificateSettings(manage_certificates=True),
    )
    with pytest.raises(kopf.PermanentError) as raised:
        start_certificates(memo=memo)
    message = str(raised.value)
    assert "403" in message
    assert "mamori-webhook-tls and mamori-webhook-ca" in message
    assert "certificate_keeper" not in memo


def test_without_the_switch_nothing_is_touched(namespace: str) -> None:
    memo = kopf.Memo(certificates=CertificateSettings(manage_certificates=False))
    start_certificates(memo=memo)  # no config, no client: it must return before needing them
    assert "certificate_keeper" not in memo
