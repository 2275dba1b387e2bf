"""Trivy Operator VulnerabilityReports → where they belong and what they say."""

from __future__ import annotations

from typing import Any

from mamori.policy.image_scan import Severity
from mamori_operator.scanning.model import Outcome
from mamori_operator.scanning.providers.base import ScanTarget
from mamori_operator.scanning.providers.trivy_operator import (
    TrivyOperatorProvider,
    report_from_object,
    report_key,
)
from mamori_operator.state.cluster import ClusterState

DIGEST = "sha256:" + "f" * 64


def vulnerability_report(digest: str = DIGEST, summary: bool = True) -> dict[str, Any]:
    report: dict[str, Any] = {
        "updateTimestamp": "2026-02-03T04:05:06Z",
        "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.60.0"},
        "registry": {"server": "index.docker.io"},
        "artifact": {"repository": "library/nginx", "tag": "1.27", "digest": digest},
        "vulnerabilities": [
            {
                "vulnerabilityID": "CVE-1",
                "resource": "libssl3",
                "installedVersion": "3.0.1",
                "fixedVersion": "3.0.2",
                "severity": "CRITICAL",
            },
            {
                "vulnerabilityID": "CVE-2",
                "resource": "zlib",
                "installedVersion": "1.2",
                "fixedVersion": "",
                "severity": "LOW",
            },
        ],
    }
    if summary:
        report["summary"] = {
            "criticalCount": 1,
            "highCount": 0,
            "mediumCount": 0,
            "lowCount": 1,
            "unknownCount": 0,
            "noneCount": 0,
        }
    return {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": "VulnerabilityReport",
        "metadata": {
            "name": "replicaset-web-6d4-app",
            "namespace": "shop",
            "labels": {
                "trivy-operator.resource.kind": "ReplicaSet",
                "trivy-operator.resource.name": "web-6d4",
                "trivy-operator.resource.namespace": "shop",
                "trivy-operator.container.name": "app",
            },
        },
        "report": report,
    }


def test_key_and_report() -> None:
    body = vulnerability_report()
    assert report_key(body) == ("shop", "ReplicaSet", "web-6d4", "app")
    report = report_from_object(body, top=1)
    assert report.counts == {Severity.CRITICAL: 1, Severity.LOW: 1}
    assert report.repository == "index.docker.io/library/nginx"
    assert report.scanner == "trivy-operator/0.60.0"
    assert report.scanned_at == "2026-02-03T04:05:06Z"
    assert [(f.id, f.package, f.fixed_version) for f in report.findings] == [
        ("CVE-1", "libssl3", "3.0.2")
    ]


def test_counts_from_findings_when_summary_is_missing() -> None:
    report = report_from_object(vulnerability_report(summary=False), top=5)
    assert report.counts == {Severity.CRITICAL: 1, Severity.LOW: 1}


def test_report_without_labels_has_no_key() -> None:
    body = vulnerability_report()
    del body["metadata"]["labels"]["trivy-operator.container.name"]
    assert report_key(body) is None


def test_provider_matches_owner_container_and_digest() -> None:
    state = ClusterState()
    body = vulnerability_report()
    key = report_key(body)
    assert key is not None
    state.set_vulnerability_report(key, report_from_object(body, top=5))
    provider = TrivyOperatorProvider(state)
    target = ScanTarget(DIGEST, "nginx:1.27", "shop", "ReplicaSet", "web-6d4", "app")
    answer = provider.lookup(target)
    assert answer is not None and answer.outcome is Outcome.COMPLETE
    assert answer.report is not None and answer.report.digest == DIGEST
    other_container = ScanTarget(DIGEST, "nginx:1.27", "shop", "ReplicaSet", "web-6d4", "side")
    assert provider.lookup(other_container).outcome is Outcome.UNSCANNED  # type: ignore[union-attr]
    newer_image = ScanTarget(
        "sha256:" + "0" * 64, "nginx:1.28", "shop", "ReplicaSet", "web-6d4", "app"
    )
    assert provider.lookup(newer_image).outcome is Outcome.PENDING  # type: ignore[union-attr]
