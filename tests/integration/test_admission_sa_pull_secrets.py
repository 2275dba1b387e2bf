"""A workload's pod template is judged with its ServiceAccount's imagePullSecrets, as its pods
will pull.

The ServiceAccount admission plugin copies a ServiceAccount's imagePullSecrets into each Pod
that lists none, not into a Deployment's template; with ``--pod-pull-secrets`` the webhook reads
the ServiceAccount itself. A webhook of its own with no credentials of its own: the only
credentials it can have for the registry (registry_support's, TLS and htpasswd) are those of the
Secret that ``kubectl create secret docker-registry`` makes in the test namespace, named by a
ServiceAccount there. The registry, keys, signing and the webhook's start are
test_admission_pull_secrets.py's, with a namespace selector of this module's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_fixtures import Kubectl
from tests.integration import test_admission_pull_secrets as pull_secrets
from tests.integration import test_admission_signatures as signatures
from tests.integration.operator_support import Cluster
from tests.integration.registry_support import TestRegistry
from tests.integration.test_admission import registered, webhook_configuration
from tests.integration.test_admission_signatures import (
    COSIGNED,
    DENIED,
    RUN,
    SELECTOR,
    apply,
    in_force,
    namespace_for,
    pod,
)
from tests.webhook.served import Pki, Served, start_webhook

pytestmark = pytest.mark.integration
# those modules' registry, keys and signed image, started anew for this module
registry = signatures.registry
cosign_keys = signatures.cosign_keys
signed = pull_secrets.signed

MODE = "sapullsecrets"  # the namespace's label value (and name) is f"{MODE}-{RUN}"
SECRET = "regcred"
REFUSED = pull_secrets.REFUSED


@pytest.fixture(scope="module")
def sa_webhook(
    cluster: Cluster,
    kubectl: Kubectl,
    kubeconfig: Path,
    registry: TestRegistry,
    cosign_keys: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """A webhook with ``--pod-pull-secrets`` and no credentials of its own, for this module's
    namespace, under a policy requiring our cosign signature."""
    policy = {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": f"sa-pull-secrets-{RUN}"},
        "spec": {
            "enforcement": "Enforce",
            "podSecurity": "privileged",  # the signature rule alone decides
            "namespaceSelector": {"matchLabels": {SELECTOR: f"{MODE}-{RUN}"}},
            "imageSignatures": [
                {
                    "images": [f"{registry.address}/{COSIGNED}"],
                    "cosign": {"publicKeys": [cosign_keys["ours"].read_text()]},
                }
            ],
        },
    }
    written = apply(kubectl, policy)
    assert written.returncode == 0, written.stderr
    directory = tmp_path_factory.mktemp("admission-sa-pull-secrets")
    pki = Pki(directory)
    pki.write_initial()
    webhook = start_webhook(
        pki=pki,
        log_file=directory / "webhook.log",
        kubeconfig=Path(kubeconfig),
        extra=["--registry-ca-file", str(registry.ca_file), "--pod-pull-secrets"],
    )
    config = webhook_configuration(
        name=f"mamori-sa-pull-secrets-{RUN}", webhook=webhook, selector_value=f"{MODE}-{RUN}"
    )
    config["webhooks"][0]["namespaceSelector"] = {"matchLabels": {SELECTOR: f"{MODE}-{RUN}"}}
    try:
        with registered(kubectl, config):
            yield webhook
    finally:
        assert webhook.stop() == 0, webhook.log()
        kubectl("delete", "clustersecuritypolicy", policy["metadata"]["name"], "--ignore-not-found")


@pytest.fixture(scope="module")
def namespace(
    sa_webhook: Served, kubectl: Kubectl, registry: TestRegistry, signed: str
) -> Iterator[str]:
    """A namespace under the policy with the registry's Secret, a ServiceAccount "puller"
    naming it and one "plain" naming none; no "default" ServiceAccount (the test control
    plane has no controller to make one)."""
    with namespace_for(kubectl, MODE) as name:
        kubectl(
            "create", "secret", "docker-registry", SECRET, "-n", name,
            f"--docker-server={registry.address}",
            f"--docker-username={registry.username}",
            f"--docker-password={registry.password}",
        )  # fmt: skip
        for account, secrets in (("puller", [SECRET]), ("plain", [])):
            manifest = {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account},
                "imagePullSecrets": [{"name": secret} for secret in secrets],
            }
            kubectl("apply", "-n", name, "-f", "-", input=json.dumps(manifest))
        in_force(kubectl, name, pod("probe", signed), DENIED)
        yield name


def deployment(
    name: str, image: str, *, account: str | None = None, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    if account is not None:
        spec["serviceAccountName"] = account
    if secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def deployment_exists(kubectl: Kubectl, namespace: str, name: str) -> bool:
    found = kubectl("get", "-n", namespace, "deployment", name, "-o", "name", check=False)
    return bool(found.returncode == 0)


def denied(result: Any, name: str, image: str) -> str:
    """The denial's text, once it is known to deny the Deployment naming the image."""
    assert result.returncode == 1, result
    text = str(result.stderr)
    assert f'{DENIED} Deployment "{name}"' in text, text
    field = "[image-signatures] spec.template.spec.containers[0].image: "
    assert f"{field}container \"app\" image '{image}'" in text, text
    assert REFUSED in text, text
    return text


def test_a_deployment_under_a_service_account_without_the_secret_is_denied(
    kubectl: Kubectl, namespace: str, signed: str
) -> None:
    result = apply(kubectl, deployment("plain", signed, account="plain"), namespace=namespace)
    text = denied(result, "plain", signed)
    assert "imagePullSecrets:" not in text  # nothing was missing: the account names none
    assert not deployment_exists(kubectl, namespace, "plain")


def test_a_deployment_whose_service_account_holds_the_secret_is_admitted(
    kubectl: Kubectl, namespace: str, signed: str
) -> None:
    result = apply(kubectl, deployment("puller", signed, account="puller"), namespace=namespace)
    assert result.returncode == 0, result.stderr
    assert "Warning:" not in result.stderr
    assert deployment_exists(kubectl, namespace, "puller")


def test_the_default_service_account_is_read_and_a_missing_one_is_named(
    kubectl: Kubectl, namespace: str, signed: str
) -> None:
    result = apply(kubectl, deployment("by-default", signed), namespace=namespace)
    text = denied(result, "by-default", signed)
    assert (
        f'imagePullSecrets: ServiceAccount "default" in namespace "{namespace}" does not exist'
    ) in text
    assert not deployment_exists(kubectl, namespace, "by-default")


def test_a_template_that_lists_its_own_secrets_does_not_get_the_accounts(
    kubectl: Kubectl, namespace: str, signed: str
) -> None:
    """The plugin adds an account's Secrets only to a pod that lists none: so does the webhook."""
    manifest = deployment("own-secrets", signed, account="puller", secrets=("no-such-secret",))
    text = denied(apply(kubectl, manifest, namespace=namespace), "own-secrets", signed)
    assert f'Secret "no-such-secret" in namespace "{namespace}" does not exist' in text
    assert not deployment_exists(kubectl, namespace, "own-secrets")
