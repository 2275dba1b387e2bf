"""pods/status UPDATEs are judged by the reserved-annotations guard only, never by the pod rules.

The chart's ``status-annotations.mamori.io`` entry sends the status writes that change a
mamori.io/ annotation. Status does not change what runs, so a pod that predates a policy (or
breaks it) must still get its status and the operator's annotations written: only who writes
the annotations is judged. The pods here run as root, which the rules would deny.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mamori.policy import load_policies
from mamori_webhook.app import create_app
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import StaticPolicySource
from mamori_webhook.settings import WebhookSettings
from tests.webhook.reviews import policy_document, review, workload

OPERATOR = "system:serviceaccount:mamori-system:mamori-operator"
SCAN_STATUS = "mamori.io/scan-status"
REQUESTS = "mamori_admission_requests_total"


@dataclass(frozen=True)
class Webhook:
    """The app's test client, and the metrics that show whether the rules ran."""

    client: Any
    metrics: AdmissionMetrics

    def counted(self, decision: str) -> float:
        """Pod UPDATE reviews answered with ``decision`` (skipped: the rules did not run)."""
        assert self.metrics.registry is not None
        labels = {"decision": decision, "kind": "Pod", "operation": "UPDATE"}
        return self.metrics.registry.get_sample_value(REQUESTS, labels) or 0.0


def webhook() -> Webhook:
    settings = WebhookSettings(
        tls_cert=Path("unused.crt"),
        tls_key=Path("unused.key"),
        trusted_annotation_writers=(OPERATOR,),
    )
    source = StaticPolicySource(load_policies([policy_document("production")]))
    metrics = AdmissionMetrics()
    app = create_app(settings, policy_source=source, metrics=metrics)
    return Webhook(app.test_client(), metrics)


def root_pod(annotations: dict[str, str]) -> dict[str, Any]:
    """A pod the restricted rules deny (runs as root), carrying ``annotations``."""
    pod = workload("Pod")
    pod["spec"]["securityContext"].update(runAsNonRoot=False, runAsUser=0)
    pod["metadata"]["annotations"] = dict(annotations)
    pod["status"] = {"phase": "Running"}
    return pod


def status_update(
    app: Webhook, *, old: dict[str, Any], new: dict[str, Any], user: str
) -> dict[str, Any]:
    document = review(new, operation="UPDATE", old=old, sub_resource="status")
    document["request"]["resource"] = {"group": "", "version": "v1", "resource": "pods"}
    document["request"]["userInfo"] = {"username": user, "groups": ["system:authenticated"]}
    response = app.client.post("/validate", json=document)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]  # type: ignore[no-any-return]


def test_the_operator_writes_annotations_on_a_pod_the_rules_would_deny() -> None:
    app = webhook()
    old = root_pod({"team": "shop"})
    new = root_pod({"team": "shop", SCAN_STATUS: "vulnerable"})
    result = status_update(app, old=old, new=new, user=OPERATOR)
    assert result["allowed"] is True, result
    assert not result.get("warnings")
    assert app.counted("skipped") == 1  # the rules never ran


def test_a_user_is_refused_by_the_guard_alone() -> None:
    app = webhook()
    old = root_pod({})
    new = root_pod({SCAN_STATUS: "clean"})
    result = status_update(app, old=old, new=new, user="alice")
    assert result["allowed"] is False
    message = result["status"]["message"]
    assert message.startswith('mamori denied Pod "web": annotations under mamori.io/ are ')
    assert '- metadata.annotations["mamori.io/scan-status"] added' in message
    assert "run-as" not in message  # no rule findings in a status review
    assert app.counted("denied") == 1


def test_other_status_writes_by_users_go_through() -> None:
    app = webhook()
    old = root_pod({SCAN_STATUS: "clean"})
    new = copy.deepcopy(old)
    new["status"]["phase"] = "Failed"
    new["metadata"]["labels"] = {"seen": "yes"}
    result = status_update(app, old=old, new=new, user="alice")
    assert result["allowed"] is True, result
    assert app.counted("skipped") == 1
