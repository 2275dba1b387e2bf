"""DescribeImageScanFindings responses and errors → answers (basic, enhanced, paging, statuses).

The pages here are literal response shapes as documented for the ECR API; the HTTP path itself
is exercised against moto in tests/integration/test_operator_ecr.py.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mamori.policy.image_scan import Severity
from mamori_operator.scanning.model import Outcome
from mamori_operator.scanning.providers.ecr import answer_from_error, answer_from_pages

DIGEST = "sha256:" + "e" * 64


def page(status: str = "COMPLETE", **findings: Any) -> dict[str, Any]:
    return {
        "imageScanStatus": {"status": status, "description": "d"},
        "imageScanFindings": findings,
    }


def test_basic_scan() -> None:
    answer = answer_from_pages(
        [
            page(
                imageScanCompletedAt=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
                findingSeverityCounts={"HIGH": 1, "UNDEFINED": 2},
                findings=[
                    {
                        "name": "CVE-2026-1",
                        "severity": "HIGH",
                        "attributes": [
                            {"key": "package_name", "value": "openssl"},
                            {"key": "package_version", "value": "3.0.1"},
                        ],
                    }
                ],
            )
        ],
        digest=DIGEST,
        repository="r/app",
        top=10,
    )
    assert answer.outcome is Outcome.COMPLETE
    assert answer.report is not None
    assert answer.report.scanner == "ecr-basic"
    assert answer.report.scanned_at == "2026-01-02T03:04:05Z"
    assert answer.report.counts == {Severity.HIGH: 1, Severity.UNKNOWN: 2}
    finding = answer.report.findings[0]
    assert (finding.id, finding.package, finding.installed_version) == (
        "CVE-2026-1",
        "openssl",
        "3.0.1",
    )


def test_enhanced_scan_pages_are_merged() -> None:
    def enhanced(vuln: str, severity: str) -> dict[str, Any]:
        return {
            "severity": severity,
            "packageVulnerabilityDetails": {
                "vulnerabilityId": vuln,
                "vulnerablePackages": [
                    {"name": "glibc", "version": "2.36", "fixedInVersion": "2.37"}
                ],
            },
        }

    answer = answer_from_pages(
        [
            page(
                "ACTIVE",
                findingSeverityCounts={"CRITICAL": 1, "MEDIUM": 1},
                enhancedFindings=[enhanced("CVE-B", "MEDIUM")],
            ),
            page(
                "ACTIVE",
                findingSeverityCounts={"CRITICAL": 1, "MEDIUM": 1},
                enhancedFindings=[enhanced("CVE-A", "CRITICAL")],
            ),
        ],
        digest=DIGEST,
        repository="r/app",
        top=10,
    )
    assert answer.report is not None
    assert answer.report.scanner == "ecr-enhanced"
    assert answer.report.counts == {
        Severity.CRITICAL: 1,
        Severity.MEDIUM: 1,
    }  # totals, not per page
    assert [f.id for f in answer.report.findings] == ["CVE-A", "CVE-B"]
    assert answer.report.findings[0].fixed_version == "2.37"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("IN_PROGRESS", Outcome.PENDING),
        ("PENDING", Outcome.PENDING),
        ("UNSUPPORTED_IMAGE", Outcome.UNSCANNED),
        ("SCAN_ELIGIBILITY_EXPIRED", Outcome.UNSCANNED),
        ("FAILED", Outcome.ERROR),
    ],
)
def test_scan_statuses(status: str, outcome: Outcome) -> None:
    answer = answer_from_pages([page(status)], digest=DIGEST, repository="r", top=5)
    assert answer.outcome is outcome
    assert answer.healthy  # a failed scan is not a failed provider


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "DescribeImageScanFindings")


@pytest.mark.parametrize(
    ("code", "outcome", "reason", "healthy"),
    [
        ("ScanNotFoundException", Outcome.UNSCANNED, "ScanNotFoundException", True),
        ("RepositoryNotFoundException", Outcome.UNSCANNED, "RepositoryNotFoundException", True),
        ("AccessDeniedException", Outcome.ERROR, "AccessDenied", False),
        ("ThrottlingException", Outcome.ERROR, "Throttled", False),
        ("InternalFailure", Outcome.ERROR, "InternalFailure", False),
    ],
)
def test_errors(code: str, outcome: Outcome, reason: str, healthy: bool) -> None:
    answer = answer_from_error(client_error(code))
    assert (answer.outcome, answer.reason, answer.healthy) == (outcome, reason, healthy)
    assert code in answer.message
