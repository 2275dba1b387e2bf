"""Trivy Operator's VulnerabilityReports (aquasecurity.github.io/v1alpha1).

Trivy Operator files one report per workload *owner* and container: a Deployment's pods are
reported under their ReplicaSet, a CronJob's under its Job. The report labels name that owner
(``trivy-operator.resource.kind``/``.name``) and the container; the operator watches the reports
(see :mod:`mamori_operator.handlers.scans`) and this provider reads them from memory, so a lookup
costs no API call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mamori.policy.terms import Provider, Severity
from mamori_operator.scanning.model import (
    Outcome,
    ProviderAnswer,
    ScanReport,
    VulnerabilityFinding,
    top_findings,
)
from mamori_operator.scanning.providers import register
from mamori_operator.scanning.providers.base import ProviderWiring, ScanTarget
from mamori_operator.state.cluster import ClusterState

NAME = Provider.TRIVY_OPERATOR.value
GROUP = "aquasecurity.github.io"
VERSION = "v1alpha1"
PLURAL = "vulnerabilityreports"
KIND_LABEL = "trivy-operator.resource.kind"
NAME_LABEL = "trivy-operator.resource.name"
CONTAINER_LABEL = "trivy-operator.container.name"
SUMMARY_FIELDS: Mapping[str, Severity] = {
    "criticalCount": Severity.CRITICAL,
    "highCount": Severity.HIGH,
    "mediumCount": Severity.MEDIUM,
    "lowCount": Severity.LOW,
    "unknownCount": Severity.UNKNOWN,
}

ReportKey = tuple[str, str, str, str]  # namespace, owner kind, owner name, container


def report_key(body: Mapping[str, Any]) -> ReportKey | None:
    """Where a VulnerabilityReport belongs; None when its labels do not say."""
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    parts = (
        metadata.get("namespace"),
        labels.get(KIND_LABEL),
        labels.get(NAME_LABEL),
        labels.get(CONTAINER_LABEL),
    )
    if not all(isinstance(p, str) and p for p in parts):
        return None
    return (str(parts[0]), str(parts[1]), str(parts[2]), str(parts[3]))


def report_from_object(body: Mapping[str, Any], *, top: int) -> ScanReport:
    """Read a VulnerabilityReport's ``report`` into our model."""
    report = body.get("report") or {}
    artifact = report.get("artifact") or {}
    server = str((report.get("registry") or {}).get("server", "") or "")
    repository = str(artifact.get("repository", "") or "")
    vulnerabilities = [v for v in report.get("vulnerabilities") or [] if isinstance(v, Mapping)]
    findings = [
        VulnerabilityFinding(
            id=str(v.get("vulnerabilityID", "")),
            severity=Severity.parse(v.get("severity")),
            package=str(v.get("resource", "")),
            installed_version=str(v.get("installedVersion", "")),
            fixed_version=str(v.get("fixedVersion", "") or ""),
        )
        for v in vulnerabilities
    ]
    summary = report.get("summary")
    counts: dict[Severity, int] = {}
    if isinstance(summary, Mapping):
        for field, severity in SUMMARY_FIELDS.items():
            value = summary.get(field)
            if isinstance(value, int) and value > 0:
                counts[severity] = value
    else:
        for finding in findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
    scanner = report.get("scanner") or {}
    version = scanner.get("version")
    metadata = body.get("metadata") or {}
    return ScanReport(
        digest=str(artifact.get("digest", "") or ""),
        repository=f"{server}/{repository}" if server and repository else repository,
        scanner=f"trivy-operator/{version}" if version else "trivy-operator",
        scanned_at=str(report.get("updateTimestamp") or metadata.get("creationTimestamp") or ""),
        counts=counts,
        findings=top_findings(findings, top),
    )


class TrivyOperatorProvider:
    name = NAME

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def scope(self, target: ScanTarget) -> str:
        return "/".join((target.namespace, target.owner_kind, target.owner_name, target.container))

    def lookup(self, target: ScanTarget) -> ProviderAnswer | None:
        key = (target.namespace, target.owner_kind, target.owner_name, target.container)
        report = self.state.vulnerability_report(key)
        where = f"{target.owner_kind}/{target.owner_name} container {target.container}"
        if report is None:
            return ProviderAnswer(
                NAME, Outcome.UNSCANNED, message=f"no VulnerabilityReport for {where}"
            )
        if report.digest and report.digest != target.digest:
            return ProviderAnswer(
                NAME,
                Outcome.PENDING,
                message=f"the VulnerabilityReport for {where} is for {report.digest}",
            )
        return ProviderAnswer(
            NAME,
            Outcome.COMPLETE,
            report=ScanReport(
                digest=target.digest,
                repository=report.repository,
                scanner=report.scanner,
                scanned_at=report.scanned_at,
                counts=report.counts,
                findings=report.findings,
            ),
        )


@register(Provider.TRIVY_OPERATOR)
def _build(wiring: ProviderWiring) -> TrivyOperatorProvider:
    return TrivyOperatorProvider(wiring.state)
