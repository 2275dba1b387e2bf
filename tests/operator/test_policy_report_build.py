"""PolicyReport bodies: one result per violation per workload, stable, and bounded in size."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mamori.findings import Enforcement, Violation
from mamori_operator.reports.build import (
    MESSAGE_MAX_CHARS,
    TRUNCATED_ANNOTATION,
    PolicyProblem,
    ReportLimits,
    cluster_report,
    fingerprint,
    namespace_report,
    result_key,
    timestamps_of,
)
from mamori_operator.reports.workloads import WorkloadRef

NOW = 1_800_000_000
LATER = NOW + 3600
LIMITS = ReportLimits()
WEB = WorkloadRef("Deployment", "web", "apps/v1")
BARE = WorkloadRef("Pod", "debug", "v1", "pod-uid")


def violation(
    rule: str = "privileged",
    *,
    enforcement: Enforcement = Enforcement.WARN,
    policy: str = "restricted",
    field: str = "spec.containers[0].securityContext.privileged",
    message: str = 'container "app" must not set securityContext.privileged=true',
    container: str | None = "app",
) -> Violation:
    return Violation(rule, policy, enforcement, field, message, container)


def report(workloads: dict[WorkloadRef, list[Violation]], **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("limits", LIMITS)
    kwargs.setdefault("timestamps", {})
    kwargs.setdefault("now", NOW)
    body = namespace_report("team", workloads, **kwargs)
    assert body is not None
    return body


def test_a_clean_namespace_has_no_report() -> None:
    assert namespace_report("team", {}, limits=LIMITS, timestamps={}, now=NOW) is None
    assert cluster_report([], limits=LIMITS, timestamps={}, now=NOW) is None


def test_one_result_per_violation_of_a_workload() -> None:
    body = report({WEB: [violation()]})
    assert body["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    assert body["kind"] == "PolicyReport"
    assert body["metadata"] == {
        "name": "mamori",
        "namespace": "team",
        "labels": {"app.kubernetes.io/managed-by": "mamori"},
    }
    assert body["results"] == [
        {
            "source": "mamori",
            "policy": "restricted",
            "rule": "privileged",
            "result": "warn",
            "severity": "high",
            "category": "Pod Security Standards (Baseline)",
            "scored": True,
            "message": 'container "app" must not set securityContext.privileged=true',
            "resources": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "team"}
            ],
            "properties": {
                "field": "spec.template.spec.containers[0].securityContext.privileged",
                "container": "app",
                "enforcement": "Warn",
            },
            "timestamp": {"seconds": NOW, "nanos": 0},
        }
    ]
    assert body["summary"] == {"pass": 0, "fail": 0, "warn": 1, "error": 0, "skip": 0}


@pytest.mark.parametrize(
    ("enforcement", "outcome"),
    [
        pytest.param(Enforcement.ENFORCE, "fail", id="enforce"),
        pytest.param(Enforcement.AUDIT, "fail", id="audit"),
        pytest.param(Enforcement.WARN, "warn", id="warn"),
    ],
)
def test_outcome_follows_the_policy_enforcement(enforcement: Enforcement, outcome: str) -> None:
    [result] = report({BARE: [violation(enforcement=enforcement)]})["results"]
    assert result["result"] == outcome
    assert result["properties"]["enforcement"] == enforcement.value


@pytest.mark.parametrize(
    ("rule", "severity", "category"),
    [
        pytest.param("host-namespaces", "high", "Pod Security Standards (Baseline)"),
        pytest.param("run-as-non-root", "medium", "Pod Security Standards (Restricted)"),
        pytest.param("image-digest", "medium", "Images"),
        pytest.param("trusted-registry", "high", "Images"),
        pytest.param("image-vulnerabilities", "high", "Images"),
        pytest.param("a-rule-from-the-future", "medium", "mamori"),
    ],
)
def test_severity_and_category_come_from_the_rule(rule: str, severity: str, category: str) -> None:
    [result] = report({BARE: [violation(rule)]})["results"]
    assert (result["severity"], result["category"]) == (severity, category)


def test_a_bare_pod_keeps_its_field_path_and_uid() -> None:
    [result] = report({BARE: [violation(container=None)]})["results"]
    assert result["resources"][0]["uid"] == "pod-uid"
    assert result["properties"] == {
        "field": "spec.containers[0].securityContext.privileged",
        "enforcement": "Warn",
    }


def test_long_messages_are_cut() -> None:
    [result] = report({BARE: [violation(message="x" * 5000)]})["results"]
    assert len(result["message"]) == MESSAGE_MAX_CHARS
    assert result["message"].endswith("…")


def many(count: int, *, message: str = "m") -> list[Violation]:
    return [
        violation("run-as-non-root", field=f"spec.f{i:04}", message=message) for i in range(count)
    ]


def test_the_order_does_not_depend_on_the_input_order() -> None:
    found = [*many(3), violation(), violation(enforcement=Enforcement.ENFORCE, policy="other")]
    one = report({WEB: found, BARE: found[:2]})
    other = report({BARE: list(reversed(found[:2])), WEB: list(reversed(found))})
    assert one == other
    # worst first: high before medium, fail before warn
    assert [(r["severity"], r["result"]) for r in one["results"][:2]] == [
        ("high", "fail"),
        ("high", "warn"),
    ]


def test_a_capped_report_says_so_and_still_counts_everything() -> None:
    body = report({WEB: [violation(), *many(9)]}, limits=ReportLimits(max_results=4))
    results = body["results"]
    assert len(results) == 5
    assert results[0]["rule"] == "privileged"  # the worst is kept
    notice = results[-1]
    assert (notice["policy"], notice["rule"], notice["result"]) == (
        "mamori",
        "report-truncated",
        "skip",
    )
    assert notice["properties"] == {
        "listed": "4",
        "total": "10",
        "maxResults": "4",
        "maxBytes": str(LIMITS.max_bytes),
    }
    assert "6 of 10 results are not listed" in notice["message"]
    assert body["metadata"]["annotations"] == {TRUNCATED_ANNOTATION: "listed 4 of 10 results"}
    assert body["summary"] == {"pass": 0, "fail": 0, "warn": 10, "error": 0, "skip": 1}


def test_the_byte_limit_holds_for_the_whole_object() -> None:
    limits = ReportLimits(max_results=10_000, max_bytes=20_000)
    body = report({WEB: many(200, message="y" * 900)}, limits=limits)
    size = len(json.dumps(body).encode())
    assert size <= limits.max_bytes
    listed = int(body["results"][-1]["properties"]["listed"])
    assert 0 < listed < 200
    assert len(body["results"]) == listed + 1


def test_timestamps_are_kept_while_a_result_lasts() -> None:
    first = report({WEB: [violation()]})
    stamps = timestamps_of(first)
    again = report({WEB: [violation(), violation("host-ports")]}, timestamps=stamps, now=LATER)
    by_rule = {r["rule"]: r["timestamp"]["seconds"] for r in again["results"]}
    assert by_rule == {"privileged": NOW, "host-ports": LATER}


def test_the_fingerprint_ignores_timestamps_and_nothing_else() -> None:
    first = report({WEB: [violation()]})
    later = report({WEB: [violation()]}, now=LATER)
    assert first != later
    assert fingerprint(first) == fingerprint(later)
    changed = report({WEB: [violation(message="another message")]})
    assert fingerprint(changed) != fingerprint(first)
    capped = report({WEB: many(3)}, limits=ReportLimits(max_results=2))
    assert fingerprint(capped) != fingerprint(report({WEB: many(2)}))


def test_the_key_of_a_result_survives_a_round_trip() -> None:
    body = report({WEB: [violation()]})
    stored = json.loads(json.dumps(body))
    assert [result_key(r) for r in stored["results"]] == [result_key(r) for r in body["results"]]
    assert fingerprint(stored) == fingerprint(body)


def test_an_invalid_policy_is_a_cluster_scoped_error() -> None:
    body = cluster_report(
        [PolicyProblem("strict", "u1", "spec.podSecurity: must be one of …", in_effect=3)],
        limits=LIMITS,
        timestamps={},
        now=NOW,
    )
    assert body is not None
    assert body["kind"] == "ClusterPolicyReport"
    assert "namespace" not in body["metadata"]
    [result] = body["results"]
    assert result["result"] == "error"
    assert result["resources"] == [
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "name": "strict",
            "uid": "u1",
        }
    ]
    assert result["properties"] == {"inEffectGeneration": "3"}
    assert body["summary"]["error"] == 1
