"""PolicyReport bodies from the audit's findings: pure, deterministic, bounded in size.

One PolicyReport per namespace that has something to report, one ClusterPolicyReport for
cluster-scoped results (a ClusterSecurityPolicy whose spec is invalid), both named ``mamori``
and labelled ``app.kubernetes.io/managed-by=mamori``. A result is one violation of one workload:
``fail`` under an Enforce or Audit policy, ``warn`` under a Warn policy; passes are not listed
(a clean namespace has no report at all), so ``summary.pass`` stays 0.

Reports are capped (:class:`ReportLimits`): results are ordered worst first, as many as fit are
listed, and a capped report says so three ways: an annotation, a last ``skip`` result that
explains the cap, and a summary that still counts every violation, listed or not.

An unchanged cluster must yield an identical report: a result's ``timestamp`` is carried over
from the report already written, and :func:`fingerprint` compares content without timestamps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mamori.findings import Enforcement, Violation
from mamori.rules.registry import RULES, Level
from mamori_operator.api.kube import MANAGED_BY, MANAGED_BY_LABEL
from mamori_operator.config import MIN_REPORT_BYTES
from mamori_operator.reports.workloads import WorkloadRef

GROUP = "wgpolicyk8s.io"
VERSION = "v1alpha2"
API_VERSION = f"{GROUP}/{VERSION}"
NAMESPACED_KIND, NAMESPACED_PLURAL = "PolicyReport", "policyreports"
CLUSTER_KIND, CLUSTER_PLURAL = "ClusterPolicyReport", "clusterpolicyreports"
REPORT_NAME = "mamori"
SOURCE = "mamori"
TRUNCATED_ANNOTATION = "mamori.io/policy-report-truncated"
OUR_ANNOTATIONS = (TRUNCATED_ANNOTATION,)
MESSAGE_MAX_CHARS = 1024
TIMESTAMP_BYTES = 40  # what a result's timestamp adds once set: {"seconds":…,"nanos":0},
ENVELOPE_BYTES = 4096  # metadata, summary and the truncation notice, with room to spare

OUTCOMES: Mapping[Enforcement, str] = {
    Enforcement.ENFORCE: "fail",
    Enforcement.AUDIT: "fail",
    Enforcement.WARN: "warn",
}
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
OUTCOME_ORDER = ("error", "fail", "warn", "skip", "pass")
CATEGORIES: Mapping[Level, str] = {
    Level.BASELINE: "Pod Security Standards (Baseline)",
    Level.RESTRICTED: "Pod Security Standards (Restricted)",
    Level.IMAGE: "Images",
}
SEVERITIES: Mapping[Level, str] = {
    Level.BASELINE: "high",  # each one opens a way out of the container
    Level.RESTRICTED: "medium",  # hardening on top of baseline
    Level.IMAGE: "medium",
}
RULE_SEVERITIES: Mapping[str, str] = {
    "image-vulnerabilities": "high",
    "trusted-registry": "high",
}
POLICY_RESOURCE = {"apiVersion": "mamori.io/v1alpha1", "kind": "ClusterSecurityPolicy"}

ResultKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportLimits:
    """How big one report may grow: etcd refuses objects over ~1.5 MiB (the API server's
    ``--max-request-bytes`` is 3 MiB), and a report near that slows every list of reports."""

    max_results: int = 1000
    max_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """A cluster-scoped result: a policy whose current spec is invalid."""

    name: str
    uid: str
    message: str
    in_effect: int | None = None  # the generation still enforced, when an earlier one was valid


def rule_category(rule_id: str) -> tuple[str, str]:
    """(severity, category) of one of our rules; an ID the registry does not know: medium."""
    if rule_id not in RULES:
        return "medium", "mamori"
    level = RULES.get(rule_id).level
    return RULE_SEVERITIES.get(rule_id, SEVERITIES[level]), CATEGORIES[level]


def violation_result(violation: Violation, workload: WorkloadRef, namespace: str) -> dict[str, Any]:
    """One result (without its timestamp): one violation of one workload."""
    severity, category = rule_category(violation.rule)
    properties = {
        "field": workload.field_path(violation.field),
        "enforcement": violation.enforcement.value,
    }
    if violation.container:
        properties["container"] = violation.container
    return {
        "source": SOURCE,
        "policy": violation.policy,
        "rule": violation.rule,
        "result": OUTCOMES[violation.enforcement],
        "severity": severity,
        "category": category,
        "scored": True,
        "message": _cut(violation.message),
        "resources": [workload.reference(namespace)],
        "properties": properties,
    }


def problem_result(problem: PolicyProblem) -> dict[str, Any]:
    properties = {}
    if problem.in_effect is not None:
        properties["inEffectGeneration"] = str(problem.in_effect)
    resource = {**POLICY_RESOURCE, "name": problem.name}
    if problem.uid:
        resource["uid"] = problem.uid
    result: dict[str, Any] = {
        "source": SOURCE,
        "policy": problem.name,
        "rule": "spec",
        "result": "error",
        "severity": "high",
        "category": "Policy",
        "scored": True,
        "message": _cut(problem.message),
        "resources": [resource],
    }
    if properties:
        result["properties"] = properties
    return result


def namespace_report(
    namespace: str,
    workloads: Mapping[WorkloadRef, Sequence[Violation]],
    *,
    limits: ReportLimits,
    timestamps: Mapping[ResultKey, int],
    now: int,
) -> dict[str, Any] | None:
    """The PolicyReport of ``namespace``; None when it has nothing to report."""
    results = [
        violation_result(violation, workload, namespace)
        for workload, violations in workloads.items()
        for violation in violations
    ]
    if not results:
        return None
    return _report(
        NAMESPACED_KIND, namespace, results, limits=limits, timestamps=timestamps, now=now
    )


def cluster_report(
    problems: Iterable[PolicyProblem],
    *,
    limits: ReportLimits,
    timestamps: Mapping[ResultKey, int],
    now: int,
) -> dict[str, Any] | None:
    """The ClusterPolicyReport; None when no cluster-scoped result exists."""
    results = [problem_result(problem) for problem in problems]
    if not results:
        return None
    return _report(CLUSTER_KIND, None, results, limits=limits, timestamps=timestamps, now=now)


def _report(
    kind: str,
    namespace: str | None,
    results: list[dict[str, Any]],
    *,
    limits: ReportLimits,
    timestamps: Mapping[ResultKey, int],
    now: int,
) -> dict[str, Any]:
    results.sort(key=_order)
    listed = _within(results, limits)
    summary = {outcome: 0 for outcome in ("pass", "fail", "warn", "error", "skip")}
    for result in results:
        summary[result["result"]] += 1
    metadata: dict[str, Any] = {
        "name": REPORT_NAME,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    shown = results[:listed]
    if listed < len(results):
        metadata["annotations"] = {
            TRUNCATED_ANNOTATION: f"listed {listed} of {len(results)} results"
        }
        shown.append(_truncation_notice(listed, len(results), limits))
        summary["skip"] += 1
    for result in shown:
        result["timestamp"] = {"seconds": timestamps.get(result_key(result), now), "nanos": 0}
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "summary": summary,
        "results": shown,
    }


def _within(results: Sequence[Mapping[str, Any]], limits: ReportLimits) -> int:
    """How many of ``results`` (in order) fit the limits."""
    budget = max(limits.max_bytes, MIN_REPORT_BYTES) - ENVELOPE_BYTES
    used = 0
    for count, result in enumerate(results):
        if count >= limits.max_results:
            return count
        used += len(_compact(result).encode()) + TIMESTAMP_BYTES + 1
        if used > budget:
            return count
    return len(results)


def _truncation_notice(listed: int, total: int, limits: ReportLimits) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "policy": SOURCE,
        "rule": "report-truncated",
        "result": "skip",
        "severity": "info",
        "category": "Report",
        "scored": False,
        "message": (
            f"{total - listed} of {total} results are not listed: a report keeps at most "
            f"{limits.max_results} results and {limits.max_bytes} bytes "
            "(--policy-report-max-results, --policy-report-max-bytes); the worst are listed "
            "first, and the summary counts them all"
        ),
        "properties": {
            "listed": str(listed),
            "total": str(total),
            "maxResults": str(limits.max_results),
            "maxBytes": str(limits.max_bytes),
        },
    }


def _order(result: Mapping[str, Any]) -> tuple[Any, ...]:
    """Worst first, then by resource, policy, rule and field: a stable cut when capped."""
    return (
        SEVERITY_ORDER.index(result["severity"]),
        OUTCOME_ORDER.index(result["result"]),
        *result_key(result),
    )


def result_key(result: Mapping[str, Any]) -> ResultKey:
    """What makes a result the same result over time (its timestamp is kept while it lasts)."""
    resource = (result.get("resources") or [{}])[0]
    properties = result.get("properties") or {}
    return (
        str(resource.get("kind", "")),
        str(resource.get("name", "")),
        str(result.get("policy", "")),
        str(result.get("rule", "")),
        str(properties.get("field", "")),
        str(properties.get("container", "")),
        str(result.get("result", "")),
        str(result.get("message", "")),
    )


def timestamps_of(report: Mapping[str, Any]) -> dict[ResultKey, int]:
    """result → seconds, for the results of a report already in the cluster."""
    stamps: dict[ResultKey, int] = {}
    for result in report.get("results") or []:
        if not isinstance(result, Mapping):
            continue
        seconds = (result.get("timestamp") or {}).get("seconds")
        if isinstance(seconds, int):
            stamps[result_key(result)] = seconds
    return stamps


def fingerprint(report: Mapping[str, Any]) -> str:
    """A digest of what a report says, timestamps excepted: equal digests, no write."""
    annotations = (report.get("metadata") or {}).get("annotations") or {}
    content = {
        "annotations": {k: annotations[k] for k in OUR_ANNOTATIONS if k in annotations},
        "summary": report.get("summary") or {},
        "results": [
            {k: v for k, v in result.items() if k != "timestamp"}
            for result in report.get("results") or []
            if isinstance(result, Mapping)
        ],
    }
    return hashlib.sha256(_compact(content).encode()).hexdigest()


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_MAX_CHARS else text[: MESSAGE_MAX_CHARS - 1] + "…"
