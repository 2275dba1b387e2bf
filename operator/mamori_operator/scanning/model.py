"""Scan results as values: what a provider answers, and the summary a pod carries.

Pure: no I/O. A provider answers per image digest; a pod's status is the worst of its images,
judged against the severity threshold of the policies that select its namespace.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mamori.images import InvalidReference, parse_reference
from mamori.policy.image_scan import Severity

STATUS_ANNOTATION = "mamori.io/scan-status"
SUMMARY_ANNOTATION = "mamori.io/scan-summary"
SCANNED_AT_ANNOTATION = "mamori.io/scanned-at"
ANNOTATIONS = (STATUS_ANNOTATION, SUMMARY_ANNOTATION, SCANNED_AT_ANNOTATION)
SUMMARY_SEVERITIES = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFORMATIONAL,
    Severity.UNKNOWN,
)


class ScanStatus(enum.StrEnum):
    """A pod's (or an image's) scan status; ``rank`` orders them from best to worst.

    ``pending``: a scan is running or the digest is not known yet; ``unscanned``: no provider
    has a result; ``error``: a provider failed, so we cannot tell; ``vulnerable``: a finding at
    or above the threshold.
    """

    CLEAN = "clean"
    PENDING = "pending"
    UNSCANNED = "unscanned"
    ERROR = "error"
    VULNERABLE = "vulnerable"

    @property
    def rank(self) -> int:
        return list(ScanStatus).index(self)


class Outcome(enum.StrEnum):
    """What a provider found for one digest."""

    COMPLETE = "complete"
    PENDING = "pending"
    UNSCANNED = "unscanned"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class VulnerabilityFinding:
    id: str
    severity: Severity
    package: str = ""
    installed_version: str = ""
    fixed_version: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "severity": self.severity.name,
            "package": self.package,
            "installedVersion": self.installed_version,
            "fixedVersion": self.fixed_version,
        }


@dataclass(frozen=True, slots=True)
class ScanReport:
    """A finished scan of one image digest: counts by severity and the worst findings."""

    digest: str
    repository: str
    scanner: str
    scanned_at: str
    counts: Mapping[Severity, int]
    findings: tuple[VulnerabilityFinding, ...] = ()

    def worst(self) -> Severity | None:
        present = [s for s, n in self.counts.items() if n > 0]
        return max(present) if present else None

    def status(self, threshold: Severity) -> ScanStatus:
        worst = self.worst()
        if worst is not None and worst is not Severity.UNKNOWN and worst >= threshold:
            return ScanStatus.VULNERABLE
        return ScanStatus.CLEAN

    def to_spec(self) -> dict[str, Any]:
        """The ImageScan ``spec`` holding this report."""
        spec: dict[str, Any] = {
            "digest": self.digest,
            "repository": self.repository,
            "scanner": self.scanner or "unknown",
            "summary": {s.name.lower(): int(self.counts.get(s, 0)) for s in SUMMARY_SEVERITIES},
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.scanned_at:
            spec["scannedAt"] = self.scanned_at
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ScanReport | None:
        """Read an ImageScan spec (written by us or by CI); None when it lacks a digest."""
        digest = spec.get("digest")
        if not isinstance(digest, str) or not digest:
            return None
        summary = spec.get("summary")
        if not isinstance(summary, Mapping):
            summary = {}
        counts = {s: _int(summary.get(s.name.lower())) for s in SUMMARY_SEVERITIES}
        findings = tuple(
            VulnerabilityFinding(
                id=str(item.get("id", "")),
                severity=Severity.parse(item.get("severity")),
                package=str(item.get("package", "")),
                installed_version=str(item.get("installedVersion", "")),
                fixed_version=str(item.get("fixedVersion", "")),
            )
            for item in spec.get("findings") or []
            if isinstance(item, Mapping)
        )
        return cls(
            digest=digest,
            repository=str(spec.get("repository", "")),
            scanner=str(spec.get("scanner", "")),
            scanned_at=str(spec.get("scannedAt", "")),
            counts=counts,
            findings=findings,
        )


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """One provider's answer for one digest; ``report`` is set when ``outcome`` is COMPLETE."""

    provider: str
    outcome: Outcome
    report: ScanReport | None = None
    message: str = ""
    reason: str = ""
    healthy: bool = True  # False when the provider itself failed (denied, throttled, down)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A container's image as the pod shows it: the reference and, once known, the digest."""

    container: str
    image: str
    digest: str | None

    @property
    def repository(self) -> str:
        """``host/path`` of the image, or the raw text when it does not parse."""
        try:
            reference = parse_reference(self.image)
        except InvalidReference:
            return self.image
        return reference.name


@dataclass(frozen=True, slots=True)
class PodScanSummary:
    status: ScanStatus
    counts: Mapping[Severity, int] = field(default_factory=dict)
    scanned_at: str | None = None

    def annotations(self) -> dict[str, str | None]:
        """The three annotations; ``None`` removes ``scanned-at`` when nothing was scanned."""
        summary = {s.name.lower(): int(self.counts.get(s, 0)) for s in SUMMARY_SEVERITIES}
        return {
            STATUS_ANNOTATION: self.status.value,
            SUMMARY_ANNOTATION: json.dumps(summary, separators=(",", ":")),
            SCANNED_AT_ANNOTATION: self.scanned_at,
        }


def image_status(answer: ProviderAnswer, threshold: Severity) -> ScanStatus:
    if answer.outcome is Outcome.COMPLETE and answer.report is not None:
        return answer.report.status(threshold)
    return {
        Outcome.PENDING: ScanStatus.PENDING,
        Outcome.UNSCANNED: ScanStatus.UNSCANNED,
        Outcome.ERROR: ScanStatus.ERROR,
    }.get(answer.outcome, ScanStatus.ERROR)


def summarize_pod(answers: Sequence[ProviderAnswer], threshold: Severity) -> PodScanSummary:
    """The worst status of the pod's images; counts add up over distinct digests.

    ``scanned_at`` is the *oldest* scan among finished images: how fresh the pod's verdict is.
    A pod without images to judge (no containers) is clean.
    """
    status = ScanStatus.CLEAN
    counts: dict[Severity, int] = {}
    times: list[str] = []
    seen: set[str] = set()
    for answer in answers:
        candidate = image_status(answer, threshold)
        if candidate.rank > status.rank:
            status = candidate
        report = answer.report
        if report is None or report.digest in seen:
            continue
        seen.add(report.digest)
        for severity, number in report.counts.items():
            counts[severity] = counts.get(severity, 0) + number
        if report.scanned_at:
            times.append(report.scanned_at)
    return PodScanSummary(status=status, counts=counts, scanned_at=min(times) if times else None)


def top_findings(
    findings: Iterable[VulnerabilityFinding], limit: int
) -> tuple[VulnerabilityFinding, ...]:
    """The ``limit`` worst findings, worst first, ties by ID (stable across scans)."""
    unique = {(f.id, f.package, f.installed_version): f for f in findings}
    ordered = sorted(unique.values(), key=lambda f: (-int(f.severity), f.id, f.package))
    return tuple(ordered[:limit])


def image_scan_name(digest: str) -> str:
    """ImageScan objects are named after their digest: ``sha256:ab…`` → ``sha256-ab…``."""
    return digest.replace(":", "-", 1)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
