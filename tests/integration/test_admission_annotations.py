"""mamori.io/ annotations on the real API server: users are refused, the operator's identity is not.

Everything comes from the chart as ``helm template`` renders it for a release: the identity the
webhook trusts (the webhook Deployment's ``MAMORI_TRUSTED_ANNOTATION_WRITERS``, built from the
release namespace and the operator's ServiceAccount) and its ValidatingWebhookConfiguration, both
entries as rendered (with ``webhook.urlOverride`` and a namespace label): the main one must send
pod UPDATEs, or ``kubectl annotate`` would never reach the webhook, and the pods/status one must
send exactly the status writes that change a mamori.io/ annotation, which only the chart's CEL
match condition, evaluated by the real API server, can show. ``mamori webhook`` runs on loopback
with that setting; requests are made with the real kubectl, impersonating a plain user
(``--as=alice``, allowed to edit pods by a RoleBinding) and the chart's operator ServiceAccount
(``--as=system:serviceaccount:…``).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.chart.helm import Helm, by_kind, container_env, one
from tests.cluster_fixtures import Kubectl
from tests.helpers import wait_for
from tests.webhook.served import Pki, Served, metric, start_webhook, write_policy

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
RELEASE = "guard"
OPERATOR_NAMESPACE = f"mamori-guard-{RUN}"
SELECTOR = "mamori.io/admission-test"
SELECTOR_VALUE = f"{RUN}-annotations"
USER = "alice"
IMAGE = "registry.k8s.io/pause:3.10"
SCAN_STATUS = "mamori.io/scan-status"
DENIED = 'admission webhook "validate.mamori.io" denied the request: mamori denied'
RESERVED = "annotations under mamori.io/ are written only by the mamori operator"
MAIN_WEBHOOK = "validate.mamori.io"
STATUS_WEBHOOK = "status-annotations.mamori.io"


@dataclass(frozen=True)
class ChartIdentity:
    """What the chart configures: the trusted writers, and how to render its webhook entries."""

    helm: Helm
    trusted_writers: str
    operator_account: str
    webhooks: dict[str, dict[str, Any]]  # by name, as the default values render them

    def configuration(self, *, url: str) -> dict[str, Any]:
        """The chart's ValidatingWebhookConfiguration for a webhook at ``url``, this test's
        namespaces only (the chart's own selector plus the test's label)."""
        label = SELECTOR.replace(".", "\\.")  # --set treats dots as nesting
        settings = {
            "webhook.urlOverride": url,
            f"webhook.namespaceSelector.matchLabels.{label}": SELECTOR_VALUE,
            "webhook.timeoutSeconds": "10",
        }
        objects = self.helm.render(release=RELEASE, namespace=OPERATOR_NAMESPACE, settings=settings)
        return one(objects, "ValidatingWebhookConfiguration")

    @property
    def operator(self) -> str:
        return f"system:serviceaccount:{OPERATOR_NAMESPACE}:{self.operator_account}"


@dataclass(frozen=True)
class Guarded:
    """A namespace behind the webhook, where ``alice`` and the operator may edit pods."""

    namespace: str
    operator: str
    webhook: Served

    def pod_updates_reviewed(self) -> float:
        """How many pod UPDATEs (status writes included) the API server sent the webhook."""
        text = self.webhook.session().get(f"{self.webhook.url}/metrics", timeout=10).text
        return metric(text, "mamori_admission_requests_total", kind="Pod", operation="UPDATE")


def pod(name: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A pod the restricted policy admits; ``annotations`` is the one thing a test changes."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "app",
                    "image": IMAGE,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def deployment(name: str, annotations: Mapping[str, str]) -> dict[str, Any]:
    template = pod(name, annotations)
    template["metadata"]["labels"] = {"app": name}
    del template["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": template["metadata"], "spec": template["spec"]},
        },
    }


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> ChartIdentity:
    helm = Helm.find(tmp_path_factory.mktemp("helm-home"))
    objects = helm.render(release=RELEASE, namespace=OPERATOR_NAMESPACE)
    [webhook] = [
        d for d in by_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-webhook")
    ]
    operator = next(
        d for d in by_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-operator")
    )
    configuration = one(objects, "ValidatingWebhookConfiguration")
    return ChartIdentity(
        helm=helm,
        trusted_writers=container_env(webhook)["MAMORI_TRUSTED_ANNOTATION_WRITERS"],
        operator_account=operator["spec"]["template"]["spec"]["serviceAccountName"],
        webhooks={entry["name"]: entry for entry in configuration["webhooks"]},
    )


def rbac(namespace: str, operator: str) -> list[dict[str, Any]]:
    """alice and the operator may edit pods (status too) and Deployments in ``namespace``."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-editor", "namespace": namespace},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["get", "list", "create", "update", "patch", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get", "patch"]},
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "verbs": ["get", "list", "create", "update", "patch"],
            },
        ],
    }
    account = operator.split(":")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "pod-editors", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-editor"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER},
            {"kind": "ServiceAccount", "namespace": account[2], "name": account[3]},
        ],
    }
    return [role, binding]


@pytest.fixture(scope="module")
def guarded(
    kubectl: Kubectl, chart: ChartIdentity, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Guarded]:
    directory = tmp_path_factory.mktemp("annotations")
    namespace = f"guarded-{RUN}"
    namespaces = {
        OPERATOR_NAMESPACE: {},
        namespace: {SELECTOR: SELECTOR_VALUE},
    }
    for name, labels in namespaces.items():
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        }
        kubectl("create", "-f", "-", input=json.dumps(manifest))
    pki = Pki(directory)
    pki.write_initial()
    policy = {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": "annotations-enforce"},
        "spec": {"podSecurity": "restricted", "trustedRegistries": ["registry.k8s.io"]},
    }
    webhook = start_webhook(
        pki=pki,
        log_file=directory / "webhook.log",
        policy_file=write_policy(directory / "policy.yaml", policy),
        extra=["--trusted-annotation-writers", chart.trusted_writers],
    )
    configuration_name = f"mamori-annotations-{RUN}"
    configuration = chart.configuration(url=f"{webhook.url}/validate")
    configuration["metadata"] = {"name": configuration_name}
    ca_bundle = base64.b64encode(webhook.ca_file.read_bytes()).decode()
    for entry in configuration["webhooks"]:
        entry["clientConfig"]["caBundle"] = ca_bundle  # what the operator injects
    try:
        kubectl("create", "serviceaccount", chart.operator_account, "-n", OPERATOR_NAMESPACE)
        for document in rbac(namespace, chart.operator):
            kubectl("apply", "-f", "-", input=json.dumps(document))
        kubectl("apply", "-f", "-", input=json.dumps(configuration))
        probe = pod(f"probe-{RUN}")
        probe["spec"]["containers"][0]["image"] = "docker.io/library/nginx:1.27"  # untrusted
        wait_for(
            lambda: (
                DENIED in as_user(kubectl, namespace, "apply", probe, "--dry-run=server").stderr
            ),
            timeout=30,
            interval=0.25,
            message="the API server to call the webhook for the guarded namespace",
        )
        yield Guarded(namespace, chart.operator, webhook)
        assert webhook.process.poll() is None, webhook.log()
    finally:
        kubectl(
            "delete", "validatingwebhookconfiguration", configuration_name, "--ignore-not-found"
        )
        webhook.stop()
        for name in namespaces:
            kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def as_user(
    kubectl: Kubectl, namespace: str, verb: str, manifest: Mapping[str, Any], *extra: str
) -> Any:
    """``kubectl --as=alice <verb> -f -`` of ``manifest``; the result, never raising."""
    return kubectl(
        f"--as={USER}", verb, "-n", namespace, *extra, "-f", "-",
        input=json.dumps(manifest), check=False,
    )  # fmt: skip


def annotate(kubectl: Kubectl, guarded: Guarded, name: str, change: str, *, who: str) -> Any:
    return kubectl(
        f"--as={who}", "annotate", "--overwrite", "-n", guarded.namespace, "pod", name, change,
        check=False,
    )  # fmt: skip


def annotations(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    found = kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout
    return dict(json.loads(found)["metadata"].get("annotations") or {})


def pod_exists(kubectl: Kubectl, namespace: str, name: str) -> bool:
    result = kubectl("get", "pod", name, "-n", namespace, "-o", "name", check=False)
    assert result.returncode == 0 or "(NotFound)" in result.stderr, result.stderr
    return result.returncode == 0


# -- tests -------------------------------------------------------------------------------------


def test_the_chart_trusts_its_operator_and_sends_pod_and_status_updates(
    chart: ChartIdentity,
) -> None:
    assert chart.trusted_writers == chart.operator
    assert set(chart.webhooks) == {MAIN_WEBHOOK, STATUS_WEBHOOK}
    rules = chart.webhooks[MAIN_WEBHOOK]["rules"]
    pods = [rule for rule in rules if "pods" in rule["resources"]]
    assert pods and all({"CREATE", "UPDATE"} <= set(rule["operations"]) for rule in pods)
    (status,) = chart.webhooks[STATUS_WEBHOOK]["rules"]
    assert (status["resources"], status["operations"]) == (["pods/status"], ["UPDATE"])


def test_a_user_cannot_create_a_pod_that_claims_a_clean_scan(
    kubectl: Kubectl, guarded: Guarded
) -> None:
    result = as_user(
        kubectl, guarded.namespace, "apply", pod("claims-clean", {SCAN_STATUS: "clean"})
    )
    assert result.returncode == 1, result
    assert f'{DENIED} Pod "claims-clean": {RESERVED}, not by user "{USER}"' in result.stderr
    assert f'metadata.annotations["{SCAN_STATUS}"] added' in result.stderr
    assert "--trusted-annotation-writers" in result.stderr
    assert not pod_exists(kubectl, guarded.namespace, "claims-clean")


def test_a_user_cannot_annotate_a_pod_but_the_operator_can(
    kubectl: Kubectl, guarded: Guarded
) -> None:
    namespace = guarded.namespace
    created = as_user(kubectl, namespace, "apply", pod("web"))
    assert created.returncode == 0, created.stderr

    refused = annotate(kubectl, guarded, "web", f"{SCAN_STATUS}=clean", who=USER)
    assert refused.returncode == 1 and f'{DENIED} Pod "web": {RESERVED}' in refused.stderr
    assert SCAN_STATUS not in annotations(kubectl, namespace, "web")

    written = annotate(kubectl, guarded, "web", f"{SCAN_STATUS}=vulnerable", who=guarded.operator)
    assert written.returncode == 0, written.stderr
    assert annotations(kubectl, namespace, "web")[SCAN_STATUS] == "vulnerable"

    for change in (f"{SCAN_STATUS}=clean", f"{SCAN_STATUS}-"):  # overwrite, remove
        result = annotate(kubectl, guarded, "web", change, who=USER)
        assert result.returncode == 1 and RESERVED in result.stderr, (change, result)
    assert annotations(kubectl, namespace, "web")[SCAN_STATUS] == "vulnerable"

    other = annotate(kubectl, guarded, "web", "team=shop", who=USER)  # anything else: fine
    assert other.returncode == 0, other.stderr
    assert annotations(kubectl, namespace, "web")[SCAN_STATUS] == "vulnerable"
    assert annotations(kubectl, namespace, "web")["team"] == "shop"
    reapplied = as_user(kubectl, namespace, "apply", pod("web"))  # keeps the operator's value
    assert reapplied.returncode == 0, reapplied.stderr
    assert annotations(kubectl, namespace, "web")[SCAN_STATUS] == "vulnerable"

    removed = annotate(kubectl, guarded, "web", f"{SCAN_STATUS}-", who=guarded.operator)
    assert removed.returncode == 0, removed.stderr
    assert SCAN_STATUS not in annotations(kubectl, namespace, "web")


def test_a_deployment_template_cannot_carry_them(kubectl: Kubectl, guarded: Guarded) -> None:
    manifest = deployment("templated", {"mamori.io/scan-summary": "0 critical"})
    result = as_user(kubectl, guarded.namespace, "apply", manifest)
    assert result.returncode == 1, result
    assert f'{DENIED} Deployment "templated": {RESERVED}' in result.stderr
    assert 'spec.template.metadata.annotations["mamori.io/scan-summary"] added' in result.stderr


def patch_status(kubectl: Kubectl, guarded: Guarded, name: str, patch: Any, *, who: str) -> Any:
    return kubectl(
        f"--as={who}", "patch", "pod", name, "-n", guarded.namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(patch), check=False,
    )  # fmt: skip


def test_the_status_subresource_cannot_smuggle_them_in(kubectl: Kubectl, guarded: Guarded) -> None:
    """Through the chart's pods/status entry; its CEL sends only writes that touch them."""
    namespace = guarded.namespace
    created = as_user(kubectl, namespace, "apply", pod("status"))
    assert created.returncode == 0, created.stderr
    claim = {"metadata": {"annotations": {SCAN_STATUS: "clean"}}}
    refused = patch_status(kubectl, guarded, "status", claim, who=USER)
    assert refused.returncode == 1, refused
    assert f'admission webhook "{STATUS_WEBHOOK}" denied the request' in refused.stderr
    assert RESERVED in refused.stderr
    assert SCAN_STATUS not in annotations(kubectl, namespace, "status")
    for key in ("scan.mamori.io/verdict", "MAMORI.IO/scan-status"):  # subdomain; any case
        smuggled = {"metadata": {"annotations": {key: "clean"}}}
        result = patch_status(kubectl, guarded, "status", smuggled, who=USER)
        assert result.returncode == 1 and RESERVED in result.stderr, (key, result)
        assert key not in annotations(kubectl, namespace, "status")

    written = patch_status(kubectl, guarded, "status", claim, who=guarded.operator)
    assert written.returncode == 0, written.stderr
    scanned = {SCAN_STATUS: "clean", "mamori.io/scan-summary": "0", "mamori.io/scanned-at": "x"}
    more = annotate(kubectl, guarded, "status", "mamori.io/scan-summary=0", who=guarded.operator)
    assert more.returncode == 0, more.stderr
    more = annotate(kubectl, guarded, "status", "mamori.io/scanned-at=x", who=guarded.operator)
    assert more.returncode == 0, more.stderr
    assert {k: v for k, v in annotations(kubectl, namespace, "status").items() if k in scanned} == (
        scanned
    )

    # What a kubelet writes (conditions, labels, other annotations) on an annotated pod never
    # reaches the webhook: the API server's CEL condition leaves it out.
    reviewed = guarded.pod_updates_reviewed()
    kubelet = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    others = [{"metadata": {"labels": {"seen": "yes"}}}, {"metadata": {"annotations": {"a": "b"}}}]
    for patch in (kubelet, *others):
        result = patch_status(kubectl, guarded, "status", patch, who=USER)
        assert result.returncode == 0, result.stderr
    assert guarded.pod_updates_reviewed() == reviewed
    for change in ({SCAN_STATUS: "vulnerable"}, {SCAN_STATUS: None}):  # change, remove
        result = patch_status(
            kubectl, guarded, "status", {"metadata": {"annotations": change}}, who=USER
        )
        assert result.returncode == 1 and RESERVED in result.stderr, (change, result)
    assert guarded.pod_updates_reviewed() == reviewed + 2
    assert annotations(kubectl, namespace, "status")[SCAN_STATUS] == "clean"
