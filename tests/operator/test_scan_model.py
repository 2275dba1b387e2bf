"""Scan results → pod status and annotations: worst image wins, threshold applies, stable output."""

from __future__ import annotations

import json

import pytest

from mamori.policy.image_scan import Severity
from mamori_operator.scanning.model import (
    Outcome,
    ProviderAnswer,
    ScanReport,
    ScanStatus,
    VulnerabilityFinding,
    image_scan_name,
    summarize_pod,
    top_findings,
)

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def report(
    digest: str = DIGEST_A, scanned_at: str = "2026-01-02T00:00:00Z", **counts: int
) -> ScanReport:
    return ScanReport(
        digest=digest,
        repository="registry.example/app",
        scanner="test",
        scanned_at=scanned_at,
        counts={Severity[name.upper()]: number for name, number in counts.items()},
    )


def complete(rep: ScanReport) -> ProviderAnswer:
    return ProviderAnswer("ecr", Outcome.COMPLETE, report=rep)


@pytest.mark.parametrize(
    ("counts", "threshold", "expected"),
    [
        pytest.param({}, Severity.HIGH, ScanStatus.CLEAN, id="no-findings"),
        pytest.param({"medium": 4}, Severity.HIGH, ScanStatus.CLEAN, id="below-threshold"),
        pytest.param({"high": 1}, Severity.HIGH, ScanStatus.VULNERABLE, id="at-threshold"),
        pytest.param({"critical": 1}, Severity.HIGH, ScanStatus.VULNERABLE, id="above"),
        pytest.param({"low": 1}, Severity.LOW, ScanStatus.VULNERABLE, id="low-threshold"),
        pytest.param({"unknown": 9}, Severity.LOW, ScanStatus.CLEAN, id="unknown-never-counts"),
    ],
)
def test_report_status_against_threshold(
    counts: dict[str, int], threshold: Severity, expected: ScanStatus
) -> None:
    assert report(**counts).status(threshold) is expected


def test_worst_image_decides_and_counts_add_over_distinct_digests() -> None:
    answers = [
        complete(report(DIGEST_A, high=1, low=2, scanned_at="2026-01-03T00:00:00Z")),
        complete(report(DIGEST_A, high=1, low=2, scanned_at="2026-01-03T00:00:00Z")),  # sidecar
        complete(report(DIGEST_B, medium=5, scanned_at="2026-01-01T00:00:00Z")),
        ProviderAnswer("ecr", Outcome.PENDING),
    ]
    summary = summarize_pod(answers, Severity.HIGH)
    assert summary.status is ScanStatus.VULNERABLE
    assert summary.counts == {Severity.HIGH: 1, Severity.LOW: 2, Severity.MEDIUM: 5}
    assert summary.scanned_at == "2026-01-01T00:00:00Z"  # the oldest scan bounds freshness


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param([Outcome.PENDING], ScanStatus.PENDING, id="pending"),
        pytest.param([Outcome.PENDING, Outcome.UNSCANNED], ScanStatus.UNSCANNED, id="unscanned"),
        pytest.param([Outcome.UNSCANNED, Outcome.ERROR], ScanStatus.ERROR, id="error"),
        pytest.param([], ScanStatus.CLEAN, id="no-containers"),
    ],
)
def test_status_order(outcomes: list[Outcome], expected: ScanStatus) -> None:
    answers = [ProviderAnswer("p", outcome) for outcome in outcomes]
    assert summarize_pod(answers, Severity.HIGH).status is expected


def test_annotations_are_compact_and_ordered() -> None:
    summary = summarize_pod([complete(report(critical=1, high=2))], Severity.HIGH)
    annotations = summary.annotations()
    assert annotations["mamori.io/scan-status"] == "vulnerable"
    assert annotations["mamori.io/scanned-at"] == "2026-01-02T00:00:00Z"
    text = annotations["mamori.io/scan-summary"]
    assert text == '{"critical":1,"high":2,"medium":0,"low":0,"informational":0,"unknown":0}'
    assert json.loads(text)["high"] == 2


def test_nothing_scanned_removes_scanned_at() -> None:
    annotations = summarize_pod(
        [ProviderAnswer("p", Outcome.UNSCANNED)], Severity.HIGH
    ).annotations()
    assert annotations["mamori.io/scanned-at"] is None


def test_top_findings_worst_first_deduplicated_and_bounded() -> None:
    findings = [
        VulnerabilityFinding("CVE-2", Severity.LOW, "zlib", "1"),
        VulnerabilityFinding("CVE-1", Severity.CRITICAL, "openssl", "3"),
        VulnerabilityFinding("CVE-1", Severity.CRITICAL, "openssl", "3"),
        VulnerabilityFinding("CVE-3", Severity.HIGH, "curl", "8"),
    ]
    assert [f.id for f in top_findings(findings, 2)] == ["CVE-1", "CVE-3"]


def test_image_scan_spec_round_trips() -> None:
    original = ScanReport(
        digest=DIGEST_A,
        repository="r/app",
        scanner="grype",
        scanned_at="2026-01-02T00:00:00Z",
        counts={Severity.CRITICAL: 1},
        findings=(VulnerabilityFinding("CVE-1", Severity.CRITICAL, "openssl", "3.0.1", "3.0.2"),),
    )
    copy = ScanReport.from_spec(original.to_spec())
    assert copy is not None
    assert copy.to_spec() == original.to_spec()
    assert image_scan_name(DIGEST_A) == "sha256-" + "a" * 64
    assert ScanReport.from_spec({"scanner": "x"}) is None
