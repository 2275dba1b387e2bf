"""Only the operator may write mamori.io/ annotations: the guard through the app's test client.

The reviews are what the API server sends (tests/webhook/reviews.py); the requester is in
``request.userInfo.username``. The operator's identity is configured the way the chart does it,
as a ServiceAccount username in ``--trusted-annotation-writers``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mamori.policy import load_policies
from mamori_webhook.app import create_app
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import StaticPolicySource
from mamori_webhook.reserved_annotations import is_reserved
from mamori_webhook.settings import WebhookSettings
from tests.webhook.reviews import WORKLOAD_KINDS, policy_document, review, workload

OPERATOR = "system:serviceaccount:mamori-system:mamori-operator"
SCAN_STATUS = "mamori.io/scan-status"


def client(*, enforcement: str = "Enforce", writers: tuple[str, ...] = (OPERATOR,)) -> Any:
    settings = WebhookSettings(
        tls_cert=Path("unused.crt"),
        tls_key=Path("unused.key"),
        trusted_annotation_writers=writers,
    )
    source = StaticPolicySource(
        load_policies(
            [
                policy_document(
                    "production",
                    enforcement=enforcement,
                    trustedRegistries=["ghcr.io/acme"],
                    exemptNamespaces=["exempt"],
                )
            ]
        )
    )
    return create_app(settings, policy_source=source, metrics=AdmissionMetrics()).test_client()


def with_annotations(obj: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """``obj`` with ``annotations`` on the pod: its own metadata, or its pod template's."""
    obj = copy.deepcopy(obj)
    path = WORKLOAD_KINDS[obj["kind"]][2]
    node = obj
    for key in path:
        node = node[key]
    node.setdefault("metadata", {})["annotations"] = dict(annotations)
    return obj


def answer(app: Any, document: dict[str, Any], *, user: str = "alice") -> dict[str, Any]:
    document["request"]["userInfo"] = {"username": user, "groups": ["system:authenticated"]}
    response = app.post("/validate", json=document)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]  # type: ignore[no-any-return]


def test_a_user_may_not_create_a_pod_that_claims_a_clean_scan() -> None:
    pod = with_annotations(workload("Pod"), {SCAN_STATUS: "clean"})
    result = answer(client(), review(pod))
    assert result["allowed"] is False
    assert result["status"]["code"] == 403
    message = result["status"]["message"]
    assert message.startswith('mamori denied Pod "web": annotations under mamori.io/ are ')
    assert 'not by user "alice"' in message
    assert '- metadata.annotations["mamori.io/scan-status"] added' in message
    assert "--trusted-annotation-writers" in message and "Leave them out" in message


@pytest.mark.parametrize("kind", sorted(set(WORKLOAD_KINDS) - {"Pod"}))
def test_pod_templates_may_not_carry_them_either(kind: str) -> None:
    obj = with_annotations(workload(kind), {"mamori.io/scanned-at": "2026-01-01T00:00:00Z"})
    result = answer(client(), review(obj))
    assert result["allowed"] is False
    assert "mamori.io/scanned-at" in result["status"]["message"]
    assert ".metadata.annotations[" in result["status"]["message"]


@pytest.mark.parametrize(
    ("old", "new", "change"),
    [
        pytest.param({}, {SCAN_STATUS: "clean"}, "added", id="add"),
        pytest.param({SCAN_STATUS: "vulnerable"}, {SCAN_STATUS: "clean"}, "changed", id="change"),
        pytest.param({SCAN_STATUS: "vulnerable"}, {}, "removed", id="remove"),
        pytest.param({}, {"scan.mamori.io/x": "1"}, "added", id="subdomain"),
    ],
)
def test_metadata_only_updates_by_users_are_refused(
    old: dict[str, str], new: dict[str, str], change: str
) -> None:
    """The rules skip metadata-only updates; the guard must not."""
    before = with_annotations(workload("Pod"), {"team": "shop", **old})
    after = with_annotations(workload("Pod"), {"team": "shop", **new})
    result = answer(client(), review(after, operation="UPDATE", old=before))
    assert result["allowed"] is False
    assert f"] {change}" in result["status"]["message"]


def test_the_operator_may_add_change_and_remove_them() -> None:
    app = client()
    plain = workload("Pod")
    scanned = with_annotations(plain, {SCAN_STATUS: "clean", "mamori.io/scan-summary": "0"})
    rescanned = with_annotations(plain, {SCAN_STATUS: "vulnerable"})
    for old, new in [(plain, scanned), (scanned, rescanned), (rescanned, plain)]:
        document = review(new, operation="UPDATE", old=old)
        assert answer(app, document, user=OPERATOR)["allowed"] is True


def test_other_edits_of_an_annotated_pod_go_through() -> None:
    scanned = with_annotations(workload("Pod"), {SCAN_STATUS: "clean"})
    relabelled = copy.deepcopy(scanned)
    relabelled["metadata"]["labels"] = {"tier": "web"}
    relabelled["metadata"]["annotations"]["team"] = "shop"
    result = answer(client(), review(relabelled, operation="UPDATE", old=scanned))
    assert result["allowed"] is True


@pytest.mark.parametrize("enforcement", ["Warn", "Audit"])
def test_the_guard_does_not_depend_on_the_policy(enforcement: str) -> None:
    pod = with_annotations(workload("Pod"), {SCAN_STATUS: "clean"})
    assert answer(client(enforcement=enforcement), review(pod))["allowed"] is False
    exempt = review(pod, namespace="exempt")
    assert answer(client(), exempt)["allowed"] is False


def test_without_trusted_writers_nobody_may_write_them() -> None:
    pod = with_annotations(workload("Pod"), {SCAN_STATUS: "clean"})
    assert answer(client(writers=()), review(pod), user=OPERATOR)["allowed"] is False


def test_a_similar_username_is_not_the_operator() -> None:
    pod = with_annotations(workload("Pod"), {SCAN_STATUS: "clean"})
    for user in (OPERATOR.upper(), OPERATOR + "x", "mamori-operator", ""):
        assert answer(client(), review(pod), user=user)["allowed"] is False


def test_the_operator_is_still_judged_by_the_rules() -> None:
    """Trust covers the annotations only: a root pod from the operator is denied as ever."""
    pod = with_annotations(workload("Pod"), {SCAN_STATUS: "clean"})
    pod["spec"]["securityContext"]["runAsUser"] = 0
    pod["spec"]["securityContext"]["runAsNonRoot"] = False
    result = answer(client(), review(pod), user=OPERATOR)
    assert result["allowed"] is False
    assert "[run-as-user]" in result["status"]["message"]


def test_deleting_an_annotated_pod_is_allowed() -> None:
    scanned = with_annotations(workload("Pod"), {SCAN_STATUS: "clean"})
    assert answer(client(), review(None, operation="DELETE", old=scanned))["allowed"] is True


@pytest.mark.parametrize(
    ("key", "reserved"),
    [
        ("mamori.io/scan-status", True),
        ("MAMORI.IO/scan-status", True),
        ("scan.mamori.io/x", True),
        ("mamori.io", False),
        ("notmamori.io/x", False),
        ("mamori.io.evil.com/x", False),
        ("example.com/mamori.io", False),
    ],
)
def test_which_keys_are_reserved(key: str, reserved: bool) -> None:
    assert is_reserved(key) is reserved
