"""The webhook against a real kube-apiserver: watched policies, and admission through the server.

``ClusterPolicySource`` follows ClusterSecurityPolicies and Namespaces as they change; then the
served webhook is registered with the API server and judges real ``kubectl`` requests.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client.rest import ApiException

from mamori.findings import Enforcement
from mamori.policy import Policy
from mamori_webhook.policy_source import ClusterPolicySource
from tests.helpers import wait_for
from tests.webhook.cluster import TEST_LABEL, Scope, install_policy_crd, unique
from tests.webhook.reviews import TRUSTED_IMAGE, UNTRUSTED_IMAGE, pod_spec
from tests.webhook.served import Pki, Served, start_webhook

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(kube_api: kubernetes.client.ApiClient) -> kubernetes.client.ApiClient:
    install_policy_crd(kube_api)
    return kube_api


@pytest.fixture
def scope(api: kubernetes.client.ApiClient, make_namespace: Callable[..., str]) -> Iterator[Scope]:
    scope = Scope(api, make_namespace)
    yield scope
    scope.cleanup()


@pytest.fixture
def source(api: kubernetes.client.ApiClient) -> Iterator[ClusterPolicySource]:
    source = ClusterPolicySource(api, watch_timeout=2)
    source.start()
    yield source
    source.stop()


def policy_named(source: ClusterPolicySource, name: str) -> Policy | None:
    current = source.current()
    if current is None:
        return None
    return next((p for p in current.policies if p.name == name), None)


def test_policies_follow_the_cluster_and_a_broken_edit_keeps_the_last_good(
    scope: Scope, source: ClusterPolicySource
) -> None:
    never_valid = scope.policy(trustedRegistries=["https://ghcr.io/acme"])
    name = scope.policy(trustedRegistries=["ghcr.io/acme"])
    wait_for(lambda: policy_named(source, name), timeout=30, message="policy loaded")
    assert policy_named(source, never_valid) is None

    scope.patch_policy(name, {"enforcement": "Warn"})
    wait_for(
        lambda: getattr(policy_named(source, name), "enforcement", None) is Enforcement.WARN,
        timeout=30,
        message="edit picked up",
    )
    scope.patch_policy(name, {"trustedRegistries": ["https://ghcr.io/acme"]})  # schema-valid only
    barrier = scope.policy(enforcement="Audit")  # events arrive in order: after this, the edit
    wait_for(lambda: policy_named(source, barrier), timeout=30, message="barrier policy loaded")
    kept = policy_named(source, name)
    assert kept is not None
    assert kept.enforcement is Enforcement.WARN
    assert [str(p) for p in kept.rules.trusted_registries] == ["ghcr.io/acme"]

    scope.delete_policy(name)
    wait_for(lambda: policy_named(source, name) is None, timeout=30, message="policy removed")


def test_namespace_labels_are_watched(scope: Scope, source: ClusterPolicySource) -> None:
    wait_for(source.current, timeout=30, message="source synced")
    namespace = scope.namespace(team="pay")
    assert (source.namespace_labels(namespace) or {}).get("team") == "pay"  # watched or read
    scope.core.patch_namespace(namespace, {"metadata": {"labels": {"team": "shop"}}})
    wait_for(
        lambda: (source.namespace_labels(namespace) or {}).get("team") == "shop",
        timeout=30,
        message="label change seen",
    )


def test_watch_resumes_after_it_times_out(scope: Scope, source: ClusterPolicySource) -> None:
    policies, _ = source.watchers
    wait_for(lambda: policies.watches >= 2, timeout=30, message="a second watch request")
    name = scope.policy()
    wait_for(lambda: policy_named(source, name), timeout=30, message="policy after resumed watch")
    assert policies.lists == 1  # a watch that ends normally is resumed, not re-listed


# Through the API server -----------------------------------------------------------------


def webhook_configuration(*, name: str, url: str, ca_pem: bytes, label: str) -> dict[str, Any]:
    """The chart's webhook, pointed at the test process and limited to the test's namespaces."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "validate.mamori.io",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods", "pods/ephemeralcontainers"],
                    },
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments"],
                    },
                ],
                "namespaceSelector": {"matchLabels": {TEST_LABEL: label}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "timeoutSeconds": 5,
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


@pytest.fixture
def registered(
    api: kubernetes.client.ApiClient, scope: Scope, kubeconfig: Path, tmp_path: Path
) -> Iterator[Served]:
    pki = Pki(tmp_path)
    pki.write_initial()
    served = start_webhook(pki=pki, log_file=tmp_path / "webhook.log", kubeconfig=Path(kubeconfig))
    admission = kubernetes.client.AdmissionregistrationV1Api(api)
    name = unique("mamori-test")
    admission.create_validating_webhook_configuration(
        webhook_configuration(
            name=name,
            url=f"{served.url}/validate",
            ca_pem=pki.ca.certificate_pem,
            label=scope.label,
        )
    )
    try:
        yield served
    finally:
        try:
            admission.delete_validating_webhook_configuration(name)
        except ApiException as error:
            if error.status != 404:
                raise
        assert served.stop() == 0, served.log()


def pod_manifest(name: str, namespace: str, *images: str) -> str:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": pod_spec(*images),
    }
    return yaml.safe_dump(pod)


def test_api_server_denies_warns_and_lets_metadata_updates_through(
    registered: Served, scope: Scope, kubectl: Any
) -> None:
    namespace = scope.namespace()
    strict = scope.policy(trustedRegistries=["ghcr.io/acme"])
    served_session = registered.session()

    def policy_in_force() -> bool:
        manifest = pod_manifest("probe", namespace, UNTRUSTED_IMAGE)
        done = kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
        return "mamori denied" in done.stderr

    wait_for(policy_in_force, timeout=30, message="webhook enforcing the new policy")

    denied = kubectl(
        "apply", "-f", "-", input=pod_manifest("bad", namespace, UNTRUSTED_IMAGE), check=False
    )
    assert denied.returncode == 1
    assert 'admission webhook "validate.mamori.io" denied the request: ' in denied.stderr
    assert f'mamori denied Pod "bad": 1 violation of policy "{strict}":' in denied.stderr
    assert "- [trusted-registry] spec.containers[0].image: " in denied.stderr

    good = kubectl("apply", "-f", "-", input=pod_manifest("good", namespace, TRUSTED_IMAGE))
    assert good.returncode == 0, good.stderr

    # The policy tightens under a running pod: metadata edits must still go through.
    scope.patch_policy(strict, {"trustedRegistries": ["registry.k8s.io"]})

    def tightened() -> bool:
        manifest = pod_manifest("probe", namespace, TRUSTED_IMAGE)
        done = kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
        return "mamori denied" in done.stderr

    wait_for(tightened, timeout=30, message="tightened policy in force")
    annotated = kubectl("-n", namespace, "annotate", "pod", "good", "audit=seen")
    assert annotated.returncode == 0, annotated.stderr
    labelled = kubectl("-n", namespace, "label", "pod", "good", "quarantine=true")
    assert labelled.returncode == 0, labelled.stderr

    soft = scope.policy(enforcement="Warn", requireImageDigest=True)
    scope.delete_policy(strict)

    def warned() -> Any:
        manifest = pod_manifest(unique("tagged"), namespace, "registry.k8s.io/pause:3.10")
        done = kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
        return done if "Warning:" in done.stderr else None

    shown = wait_for(warned, timeout=30, message="warn policy in force")
    assert shown.returncode == 0, shown.stderr
    assert f"Warning: {soft}: [image-digest] spec.containers[0].image: " in shown.stderr

    metrics = served_session.get(f"{registered.url}/metrics", timeout=10).text
    assert 'decision="denied",kind="Pod",operation="CREATE"' in metrics
    assert 'decision="skipped",kind="Pod",operation="UPDATE"' in metrics
