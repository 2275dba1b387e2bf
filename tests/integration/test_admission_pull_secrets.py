"""The pod's imagePullSecrets at admission: the webhook asks the registry as the kubelet would.

A webhook of its own with ``--pod-pull-secrets`` and no ``--registry-credentials``: the only
credentials it can have for the registry (registry_support's, TLS and htpasswd) are those of the
Secret that ``kubectl create secret docker-registry`` makes in the test namespace, read from the
real API server when a pod names it. The registry, keys, signing and the webhook's
configuration are test_admission_signatures.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_fixtures import Kubectl
from tests.integration import test_admission_signatures as signatures
from tests.integration.operator_support import Cluster
from tests.integration.registry_support import TestRegistry
from tests.integration.test_admission import registered, webhook_configuration
from tests.integration.test_admission_signatures import (
    COSIGNED,
    DENIED,
    RUN,
    SELECTOR,
    Images,
    apply,
    exists,
    in_force,
    namespace_for,
    pod,
    sign_cosign_legacy,
)
from tests.webhook.served import Pki, Served, start_webhook

pytestmark = pytest.mark.integration
# that module's registry (TLS, htpasswd) and cosign key pairs, started anew for this module
registry = signatures.registry
cosign_keys = signatures.cosign_keys

MODE = "pullsecrets"  # the namespace's label value (and name) is f"{MODE}-{RUN}"
SECRET = "regcred"
REFUSED = (
    "the registry refused the credentials (or anonymous access) (HTTP 401 without credentials)"
)


@pytest.fixture(scope="module")
def signed(registry: TestRegistry, cosign_keys: dict[str, Path]) -> str:
    """A tag in the registry whose digest carries our cosign signature."""
    images = Images(registry)
    images.push(COSIGNED, "pulled")
    sign_cosign_legacy(registry, cosign_keys["ours"], images.pinned(COSIGNED, "pulled"))
    return images.tagged(COSIGNED, "pulled")


@pytest.fixture(scope="module")
def pull_secrets_webhook(
    cluster: Cluster,
    kubectl: Kubectl,
    kubeconfig: Path,
    registry: TestRegistry,
    cosign_keys: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    policy = {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": f"pull-secrets-{RUN}"},
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
    directory = tmp_path_factory.mktemp("admission-pull-secrets")
    pki = Pki(directory)
    pki.write_initial()
    webhook = start_webhook(
        pki=pki,
        log_file=directory / "webhook.log",
        kubeconfig=Path(kubeconfig),
        extra=["--registry-ca-file", str(registry.ca_file), "--pod-pull-secrets"],
    )
    config = webhook_configuration(
        name=f"mamori-pull-secrets-{RUN}", webhook=webhook, selector_value=f"{MODE}-{RUN}"
    )
    config["webhooks"][0]["namespaceSelector"] = {"matchLabels": {SELECTOR: f"{MODE}-{RUN}"}}
    try:
        with registered(kubectl, config):
            yield webhook
    finally:
        assert webhook.stop() == 0, webhook.log()
        kubectl("delete", "clustersecuritypolicy", policy["metadata"]["name"], "--ignore-not-found")


@pytest.fixture(scope="module")
def namespace_with_secret(
    pull_secrets_webhook: Served,
    kubectl: Kubectl,
    registry: TestRegistry,
    signed: str,
) -> Iterator[str]:
    """A namespace under the policy holding the registry's docker-registry Secret, once the
    webhook judges it (a pod without the Secret is refused by the registry)."""
    with namespace_for(kubectl, MODE) as name:
        kubectl(
            "create", "secret", "docker-registry", SECRET, "-n", name,
            f"--docker-server={registry.address}",
            f"--docker-username={registry.username}",
            f"--docker-password={registry.password}",
        )  # fmt: skip
        in_force(kubectl, name, pod("probe", signed), DENIED)
        yield name


def pulling(name: str, image: str, *secrets: str) -> dict[str, Any]:
    manifest = pod(name, image)
    if secrets:
        manifest["spec"]["imagePullSecrets"] = [{"name": secret} for secret in secrets]
    return manifest


def test_a_pod_naming_the_secret_is_admitted(
    kubectl: Kubectl, namespace_with_secret: str, signed: str
) -> None:
    result = apply(kubectl, pulling("with-secret", signed, SECRET), namespace=namespace_with_secret)
    assert result.returncode == 0, result.stderr
    assert "Warning:" not in result.stderr
    assert exists(kubectl, namespace_with_secret, "with-secret")


def test_the_same_pod_without_the_secret_is_denied_by_the_registrys_refusal(
    kubectl: Kubectl, namespace_with_secret: str, signed: str
) -> None:
    # what the Secret gave the pod above is not lent to a pod that does not name it
    assert apply(
        kubectl, pulling("admitted-first", signed, SECRET), "--dry-run=server",
        namespace=namespace_with_secret,
    ).returncode == 0  # fmt: skip
    result = apply(kubectl, pulling("without-secret", signed), namespace=namespace_with_secret)
    assert result.returncode == 1, result
    assert f'{DENIED} Pod "without-secret"' in result.stderr
    assert "[image-signatures] spec.containers[0].image: " in result.stderr
    assert "could not be resolved to a digest" in result.stderr
    assert REFUSED in result.stderr
    assert "imagePullSecrets:" not in result.stderr  # no Secret of the pod is named
    assert not exists(kubectl, namespace_with_secret, "without-secret")


def test_a_pod_naming_a_secret_that_does_not_exist_is_denied_naming_it(
    kubectl: Kubectl, namespace_with_secret: str, signed: str
) -> None:
    result = apply(
        kubectl, pulling("missing-secret", signed, "no-such-secret"),
        namespace=namespace_with_secret,
    )  # fmt: skip
    assert result.returncode == 1, result
    assert f'{DENIED} Pod "missing-secret"' in result.stderr
    assert REFUSED in result.stderr
    assert (
        f'imagePullSecrets: Secret "no-such-secret" in namespace "{namespace_with_secret}" '
        "does not exist"
    ) in result.stderr
    assert not exists(kubectl, namespace_with_secret, "missing-secret")
