"""The Flask app through its test client: every admission path, every error answer, metrics."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from mamori.policy import Policy, load_policies
from mamori_webhook.app import create_app
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import PolicySet, StaticPolicySource
from mamori_webhook.settings import WebhookSettings
from tests.webhook.reviews import (
    TRUSTED_IMAGE,
    UNTRUSTED_IMAGE,
    WORKLOAD_KINDS,
    pod_spec,
    policy_document,
    review,
    workload,
)

TRUSTED = ["ghcr.io/acme"]


def settings(**changes: Any) -> WebhookSettings:
    values: dict[str, Any] = {"tls_cert": Path("unused.crt"), "tls_key": Path("unused.key")}
    values.update(changes)
    return WebhookSettings(**values)


def policies(*documents: dict[str, Any]) -> list[Policy]:
    return load_policies(list(documents))


@dataclass
class Harness:
    client: FlaskClient
    metrics: AdmissionMetrics

    def validate(self, document: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post("/validate", json=document)
        assert response.status_code == 200, response.get_data(as_text=True)
        answer = response.get_json()
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == document["request"]["uid"]
        return answer["response"]  # type: ignore[no-any-return]

    def sample(self, name: str, **labels: str) -> float:
        assert self.metrics.registry is not None
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


class LabelledSource(StaticPolicySource):
    """Static policies plus namespace labels, as the cluster source would know them."""

    def __init__(self, policies: Sequence[Policy], labels: Mapping[str, Mapping[str, str]]):
        super().__init__(policies)
        self.labels = labels

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.labels.get(namespace)


class NotLoadedSource(StaticPolicySource):
    def current(self) -> PolicySet | None:
        return None


def harness(source: StaticPolicySource, **setting_changes: Any) -> Harness:
    metrics = AdmissionMetrics()
    app = create_app(settings(**setting_changes), policy_source=source, metrics=metrics)
    return Harness(app.test_client(), metrics)


@pytest.fixture
def webhook() -> Harness:
    """Enforce restricted + trusted registries everywhere but kube-system."""
    return harness(
        StaticPolicySource(
            policies(
                policy_document(
                    "production",
                    trustedRegistries=TRUSTED,
                    exemptNamespaces=["kube-system"],
                )
            )
        )
    )


def untrusted(kind: str = "Pod") -> dict[str, Any]:
    return workload(kind, spec=pod_spec(TRUSTED_IMAGE, UNTRUSTED_IMAGE))


# Verdicts -------------------------------------------------------------------------------


def test_compliant_deployment_is_allowed_silently(webhook: Harness) -> None:
    response = webhook.validate(review(workload("Deployment")))
    assert response == {"uid": response["uid"], "allowed": True}
    assert (
        webhook.sample(
            "mamori_admission_requests_total",
            decision="allowed",
            kind="Deployment",
            operation="CREATE",
        )
        == 1
    )


def test_untrusted_image_is_denied_with_rule_field_and_fix(webhook: Harness) -> None:
    response = webhook.validate(review(untrusted()))
    assert response["allowed"] is False
    status = response["status"]
    assert (status["code"], status["reason"]) == (403, "Forbidden")
    lines = status["message"].splitlines()
    assert lines[0] == 'mamori denied Pod "web": 1 violation of policy "production":'
    assert lines[1].startswith("- [trusted-registry] spec.containers[1].image: ")
    assert "spec.trustedRegistries" in lines[1]  # the fix
    labels = {"rule": "trusted-registry", "policy": "production", "enforcement": "Enforce"}
    assert webhook.sample("mamori_admission_violations_total", **labels) == 1
    assert (
        webhook.sample(
            "mamori_admission_requests_total", decision="denied", kind="Pod", operation="CREATE"
        )
        == 1
    )


@pytest.mark.parametrize("kind", sorted(WORKLOAD_KINDS))
def test_every_workload_kind_is_judged_on_its_pod_template(webhook: Harness, kind: str) -> None:
    assert webhook.validate(review(workload(kind)))["allowed"] is True
    response = webhook.validate(review(untrusted(kind)))
    assert response["allowed"] is False
    _, _, path = WORKLOAD_KINDS[kind]
    prefix = ".".join((*path, "spec")) if path else "spec"
    assert f"- [trusted-registry] {prefix}.containers[1].image: " in response["status"]["message"]


def test_kinds_that_run_no_pods_are_allowed_unjudged(webhook: Harness) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert webhook.validate(review(config_map))["allowed"] is True
    assert (
        webhook.sample(
            "mamori_admission_requests_total", decision="skipped", kind="other", operation="CREATE"
        )
        == 1
    )


def test_warn_policy_allows_with_warnings() -> None:
    webhook = harness(
        StaticPolicySource(
            policies(policy_document("soft", enforcement="Warn", trustedRegistries=TRUSTED))
        )
    )
    response = webhook.validate(review(untrusted("Deployment")))
    assert response["allowed"] is True
    assert "status" not in response
    (warning,) = response["warnings"]
    assert warning.startswith("soft: [trusted-registry] spec.template.spec.containers[1].image: ")
    assert len(warning) <= 256


def test_audit_policy_allows_with_audit_annotations() -> None:
    webhook = harness(
        StaticPolicySource(
            policies(policy_document("observe", enforcement="Audit", trustedRegistries=TRUSTED))
        )
    )
    response = webhook.validate(review(untrusted()))
    assert response["allowed"] is True
    assert "warnings" not in response
    annotation = response["auditAnnotations"]["observe.trusted-registry"]
    assert annotation.startswith("spec.containers[1].image: ")
    labels = {"rule": "trusted-registry", "policy": "observe", "enforcement": "Audit"}
    assert webhook.sample("mamori_admission_violations_total", **labels) == 1


def test_enforce_and_warn_policies_combine() -> None:
    webhook = harness(
        StaticPolicySource(
            policies(
                policy_document("hard", trustedRegistries=TRUSTED),
                policy_document("soft", enforcement="Warn", requireImageDigest=True),
            )
        )
    )
    spec = pod_spec(TRUSTED_IMAGE, "docker.io/evil/miner:latest")
    response = webhook.validate(review(workload("Pod", spec=spec)))
    assert response["allowed"] is False
    assert '1 violation of policy "hard"' in response["status"]["message"]
    assert [w.split("]")[0] for w in response["warnings"]] == ["soft: [image-digest"]


def test_exempt_namespace_is_allowed(webhook: Harness) -> None:
    response = webhook.validate(review(untrusted(), namespace="kube-system"))
    assert response == {"uid": response["uid"], "allowed": True}


def test_namespace_selector_uses_namespace_labels() -> None:
    selected = policy_document(
        "payments", trustedRegistries=TRUSTED, namespaceSelector={"matchLabels": {"team": "pay"}}
    )
    source = LabelledSource(policies(selected), {"billing": {"team": "pay"}, "shop": {}})
    webhook = harness(source)
    assert webhook.validate(review(untrusted(), namespace="billing"))["allowed"] is False
    assert webhook.validate(review(untrusted(), namespace="shop"))["allowed"] is True


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed_unjudged(webhook: Harness, operation: str) -> None:
    document = review(None, operation=operation, old=untrusted(), kind="Pod")
    assert webhook.validate(document) == {"uid": document["request"]["uid"], "allowed": True}
    assert (
        webhook.sample(
            "mamori_admission_requests_total", decision="skipped", kind="Pod", operation=operation
        )
        == 1
    )


def test_dry_run_is_judged_like_the_real_request(webhook: Harness) -> None:
    real = webhook.validate(review(untrusted()))
    dry = webhook.validate(review(untrusted(), dry_run=True))
    assert dry["allowed"] is real["allowed"] is False
    assert dry["status"] == real["status"]


def test_metadata_only_update_of_an_old_pod_is_allowed(webhook: Harness) -> None:
    old = untrusted()
    old["status"] = {"phase": "Running"}
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {"example.com/scanned": "done"}  # mamori.io/ is guarded
    new["metadata"]["labels"] = {"quarantine": "true"}
    new["status"] = {"phase": "Running", "podIP": "10.0.0.7"}
    response = webhook.validate(review(new, operation="UPDATE", old=old))
    assert response == {"uid": response["uid"], "allowed": True}


def test_spec_update_is_judged(webhook: Harness) -> None:
    old = workload("Deployment")
    new = untrusted("Deployment")
    assert webhook.validate(review(new, operation="UPDATE", old=old))["allowed"] is False


def test_pod_template_label_change_is_judged(webhook: Harness) -> None:
    old = untrusted("Deployment")
    new = copy.deepcopy(old)
    new["spec"]["template"]["metadata"]["labels"]["rollout"] = "2"
    assert webhook.validate(review(new, operation="UPDATE", old=old))["allowed"] is False


@pytest.mark.parametrize("sub_resource", ["status", "binding", "scale", "eviction"])
def test_other_subresources_are_allowed(webhook: Harness, sub_resource: str) -> None:
    document = review(untrusted(), operation="UPDATE", old=untrusted(), sub_resource=sub_resource)
    assert webhook.validate(document)["allowed"] is True


def test_ephemeral_container_is_judged_with_the_whole_pod(webhook: Harness) -> None:
    old = workload("Pod")
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [
        {
            "name": "debugger",
            "image": "docker.io/library/busybox:1.36",
            "targetContainerName": "app",
        }
    ]
    document = review(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    response = webhook.validate(document)
    assert response["allowed"] is False
    assert (
        "- [trusted-registry] spec.ephemeralContainers[0].image: " in response["status"]["message"]
    )

    trusted = copy.deepcopy(new)
    trusted["spec"]["ephemeralContainers"][0]["image"] = TRUSTED_IMAGE
    trusted["spec"]["ephemeralContainers"][0]["securityContext"] = copy.deepcopy(
        old["spec"]["containers"][0]["securityContext"]
    )
    document = review(trusted, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    assert webhook.validate(document)["allowed"] is True


def test_object_without_api_version_is_judged_by_the_request_kind(webhook: Harness) -> None:
    document = review(untrusted("Deployment"))
    del document["request"]["object"]["apiVersion"]
    del document["request"]["object"]["kind"]
    assert webhook.validate(document)["allowed"] is False


# Errors --------------------------------------------------------------------------------


def error_of(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return str(response.get_json()["error"])


def test_malformed_review_is_400_with_reason(webhook: Harness) -> None:
    response = webhook.client.post(
        "/validate", data=b'{"apiVersion": "v1"', content_type="application/json"
    )
    assert error_of(response).startswith("body is not valid JSON")
    document = review(workload("Pod"))
    del document["request"]["uid"]
    assert "request.uid" in error_of(webhook.client.post("/validate", json=document))
    assert webhook.sample("mamori_admission_errors_total", reason="malformed-review") == 2


def test_wrong_content_type_is_400(webhook: Harness) -> None:
    response = webhook.client.post(
        "/validate", data=json.dumps(review(workload("Pod"))), content_type="text/plain"
    )
    assert error_of(response) == "Content-Type must be application/json, got 'text/plain'"


def test_json_with_charset_is_accepted(webhook: Harness) -> None:
    document = review(workload("Pod"))
    response = webhook.client.post(
        "/validate", data=json.dumps(document), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 200


def test_oversized_body_is_400_not_413() -> None:
    webhook = harness(StaticPolicySource(policies(policy_document("p"))), max_body_bytes=4096)
    document = review(workload("Pod"))
    document["request"]["object"]["metadata"]["annotations"] = {"pad": "x" * 5000}
    response = webhook.client.post("/validate", json=document)
    assert error_of(response) == "request body is larger than 4096 bytes (--max-body-bytes)"
    assert webhook.sample("mamori_admission_errors_total", reason="body-too-large") == 1
    assert webhook.validate(review(workload("Pod")))["allowed"] is True


def test_body_without_length_is_capped_while_reading(webhook: Harness) -> None:
    capped = harness(StaticPolicySource(policies(policy_document("p"))), max_body_bytes=2048)
    body = json.dumps(review(workload("Pod"))).encode() + b" " * 4096
    response = capped.client.post(
        "/validate",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets for chunked bodies
    )
    assert error_of(response).startswith("request body is larger than 2048 bytes")


def test_policies_not_loaded_is_503_so_failure_policy_applies() -> None:
    webhook = harness(NotLoadedSource(policies(policy_document("p"))))
    response = webhook.client.post("/validate", json=review(workload("Pod")))
    assert error_of(response, 503) == "policies are not loaded yet"


class BrokenPolicy(Policy):
    """A policy whose namespace check crashes: stands in for a bug inside the engine."""

    __slots__ = ()

    def selects(self, namespace: str | None, labels: Mapping[str, str] | None = None) -> bool:
        raise RuntimeError("bug")


def test_internal_error_fails_closed_and_the_app_keeps_serving() -> None:
    broken = harness(StaticPolicySource([BrokenPolicy(name="broken")]))
    response = broken.validate(review(workload("Pod")))
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert "internal error" in response["status"]["message"]
    assert broken.sample("mamori_admission_errors_total", reason="internal") == 1
    delete = review(None, operation="DELETE", old=workload("Pod"), kind="Pod")
    assert broken.validate(delete)["allowed"] is True


def test_unknown_paths_and_methods_answer_json(webhook: Harness) -> None:
    assert error_of(webhook.client.get("/nope"), 404)
    assert error_of(webhook.client.get("/validate"), 405)


# Health and metrics --------------------------------------------------------------------


def test_health_and_readiness(webhook: Harness) -> None:
    assert webhook.client.get("/healthz").get_json() == {"status": "ok"}
    assert webhook.client.get("/readyz").get_json() == {"status": "ready"}


@dataclass
class Certificates:
    ready: bool


def test_not_ready_without_policies_or_certificate() -> None:
    metrics = AdmissionMetrics()
    app = create_app(
        settings(),
        policy_source=NotLoadedSource([]),
        metrics=metrics,
        certificates=Certificates(ready=False),
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["problems"] == [
        "policies are not loaded yet",
        "no valid TLS certificate is loaded",
    ]
    assert app.test_client().get("/healthz").status_code == 200


def test_metrics_endpoint_exposes_the_counters(webhook: Harness) -> None:
    webhook.validate(review(untrusted()))
    webhook.client.post("/validate", data=b"[]", content_type="application/json")
    text = webhook.client.get("/metrics").get_data(as_text=True)
    assert (
        'mamori_admission_requests_total{decision="denied",kind="Pod",operation="CREATE"} 1.0'
        in text
    )
    assert (
        'mamori_admission_violations_total{enforcement="Enforce",policy="production",'
        'rule="trusted-registry"} 1.0' in text
    )
    assert 'mamori_admission_errors_total{reason="malformed-review"} 1.0' in text
    assert 'mamori_admission_duration_seconds_bucket{le="0.00025"}' in text
    assert "mamori_admission_duration_seconds_count 1.0" in text


@pytest.mark.parametrize(
    "operation",
    [["CREATE"], {"op": "CREATE"}, [[["x"]]], 7, None],
    ids=["list", "object", "nested-list", "number", "null"],
)
def test_unusable_operation_is_400_with_one_short_log_line(
    webhook: Harness, operation: Any, caplog: pytest.LogCaptureFixture
) -> None:
    document = review(workload("Pod"))
    document["request"]["operation"] = operation
    with caplog.at_level("DEBUG", logger="mamori"):
        message = error_of(webhook.client.post("/validate", json=document))
    assert message.startswith("request.operation must be one of CONNECT, CREATE, DELETE, UPDATE")
    records = [r for r in caplog.records if r.name.startswith("mamori")]
    assert len(records) == 1, [r.getMessage() for r in records]
    [record] = records
    assert record.levelname == "WARNING"
    assert record.exc_info is None and record.exc_text is None
    assert "request.operation" in record.getMessage()
    assert len(record.getMessage()) < 300 and "\n" not in record.getMessage()
    assert webhook.sample("mamori_admission_errors_total", reason="unexpected") == 0
