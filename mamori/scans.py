"""Scan-gated admission as values: what an ImageScan says, and what a policy does with it.

An ImageScan (``mamori.io/v1alpha1``, cluster-scoped, one per image digest, named
``sha256-<hex>``) holds one scanner's findings for one digest; :func:`scan_result_from_object`
reads it into a :class:`ScanResult`. A :class:`ScanLookup` answers "what is known about this
digest, and what time is it", so that the ``image-vulnerabilities`` rule stays a pure function
of the pod, the policy and that answer: the webhook passes an index kept current by a watch,
tests a :class:`ScanTable`, and ``mamori check`` (offline) none, which skips the rule.

Pure: no I/O, no clock (the lookup's :meth:`ScanLookup.now` is the clock).
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mamori.images import ImageReference, RegistryPattern
from mamori.policy.terms import Severity

DIGEST = re.compile(r"^[a-z0-9]+:[a-f0-9]{32,128}$")
"""An image digest as the ImageScan schema accepts it (``sha256:<hex>``)."""
SUMMARY_SEVERITIES = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFORMATIONAL,
    Severity.UNKNOWN,
)
MAX_FINDINGS = 200  # the ImageScan schema's maxItems


class InvalidImageScan(ValueError):
    """An ImageScan that cannot be read; the message says which field."""


@dataclass(frozen=True, slots=True)
class ScanFinding:
    """One finding: an advisory ID (CVE-…, GHSA-…) and its severity."""

    id: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scanner found in one image digest.

    ``counts`` holds every severity of the summary; ``findings`` the worst ones the ImageScan
    lists (at most 200: the summary may count more than are listed). ``scanned_at`` is None when
    the scan does not say when it ran.
    """

    digest: str
    scanner: str
    scanned_at: datetime.datetime | None
    counts: Mapping[Severity, int]
    findings: tuple[ScanFinding, ...] = ()
    repository: str = ""

    def counted_at_or_above(self, threshold: Severity) -> int:
        """How many findings of at least ``threshold`` the scan reports (UNKNOWN never counts)."""
        floor = max(threshold, Severity.INFORMATIONAL)
        counted = sum(n for severity, n in self.counts.items() if severity >= floor)
        listed = sum(1 for finding in self.findings if finding.severity >= floor)
        return max(counted, listed)


class ScanLookup(Protocol):
    """Where the scan results of image digests come from, and the time they are judged at."""

    def scan(self, digest: str) -> ScanResult | None:
        """The result for ``digest`` (``sha256:<hex>``), or None when there is none."""

    def now(self) -> datetime.datetime:
        """The current time (timezone-aware): scan ages and exception expiries are judged by it."""

    def unavailable(self) -> str | None:
        """Why no result can be looked up now (the source cannot be read), else None: images
        are then judged as unscanned, with this reason, rather than by a partial index."""


@dataclass(frozen=True, slots=True)
class ScanTable:
    """A fixed set of results at a fixed time: for tests and for callers with a snapshot."""

    results: Mapping[str, ScanResult]
    at: datetime.datetime

    def scan(self, digest: str) -> ScanResult | None:
        return self.results.get(digest)

    def now(self) -> datetime.datetime:
        return self.at

    def unavailable(self) -> str | None:
        return None


# -- reading an ImageScan ---------------------------------------------------------------------


def scan_result_from_object(obj: Mapping[str, Any]) -> ScanResult:
    """Read an ImageScan object; raise :class:`InvalidImageScan` naming what is wrong.

    The schema already refuses most mistakes; this is the second line for objects written
    before it or under an older CRD, so that a bad object is skipped, never trusted.
    """
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise InvalidImageScan("spec: must be an object")
    digest = spec.get("digest")
    if not isinstance(digest, str) or not DIGEST.match(digest):
        raise InvalidImageScan("spec.digest: must be an image digest such as sha256:<hex>")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if name is not None and name != image_scan_name(digest):
        raise InvalidImageScan(f"metadata.name: must be {image_scan_name(digest)} for its digest")
    scanner = spec.get("scanner")
    if not isinstance(scanner, str) or not scanner.strip():
        raise InvalidImageScan("spec.scanner: must name the scanner")
    return ScanResult(
        digest=digest,
        scanner=scanner,
        scanned_at=_scanned_at(spec.get("scannedAt")),
        counts=_counts(spec.get("summary")),
        findings=_findings(spec.get("findings")),
        repository=str(spec.get("repository") or ""),
    )


def image_scan_name(digest: str) -> str:
    """ImageScan objects are named after their digest: ``sha256:ab…`` → ``sha256-ab…``."""
    return digest.replace(":", "-", 1)


def digest_of_name(name: str) -> str:
    """The digest an ImageScan's name stands for: ``sha256-ab…`` → ``sha256:ab…``."""
    return name.replace("-", ":", 1)


def _scanned_at(value: object) -> datetime.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    if not isinstance(value, str):
        raise InvalidImageScan("spec.scannedAt: must be an RFC 3339 date-time")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidImageScan("spec.scannedAt: must be an RFC 3339 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _counts(value: object) -> Mapping[Severity, int]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise InvalidImageScan("spec.summary: must be an object of counts")
    counts: dict[Severity, int] = {}
    for severity in SUMMARY_SEVERITIES:
        number = value.get(severity.name.lower(), 0)
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise InvalidImageScan(f"spec.summary.{severity.name.lower()}: must be a count")
        counts[severity] = number
    return counts


def _findings(value: object) -> tuple[ScanFinding, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_FINDINGS:
        raise InvalidImageScan(f"spec.findings: must be a list of at most {MAX_FINDINGS}")
    findings: list[ScanFinding] = []
    for index, item in enumerate(value):
        where = f"spec.findings[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidImageScan(f"{where}: must be an object")
        finding_id, severity = item.get("id"), item.get("severity")
        if not isinstance(finding_id, str) or not finding_id:
            raise InvalidImageScan(f"{where}.id: must be set")
        if not isinstance(severity, str) or severity not in Severity.__members__:
            choices = ", ".join(Severity.__members__)
            raise InvalidImageScan(f"{where}.severity: must be one of {choices}")
        findings.append(ScanFinding(finding_id, Severity[severity]))
    return tuple(findings)


# -- what a policy does with the results (spec.vulnerabilities, parsed) ------------------------


class UnscannedAction(enum.StrEnum):
    """What ``spec.vulnerabilities.unscanned`` does with an image the gate cannot judge."""

    DENY = "Deny"
    WARN = "Warn"
    ALLOW = "Allow"


@dataclass(frozen=True, slots=True)
class VulnerabilityException:
    """One accepted finding: ``vulnerability`` in the images under ``images`` (empty: any image),
    until ``expires``; ``reason`` says why, for whoever reads the policy next."""

    vulnerability: str
    expires: datetime.datetime
    reason: str
    images: tuple[RegistryPattern, ...] = ()
    expires_as_written: str = ""
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.vulnerability.casefold())
        if not self.expires_as_written:
            object.__setattr__(self, "expires_as_written", self.expires.isoformat())

    def covers(self, finding_id: str, reference: ImageReference) -> bool:
        """True when this exception names ``finding_id`` for ``reference`` (expiry aside)."""
        if finding_id.casefold() != self.key:
            return False
        return not self.images or any(pattern.matches(reference) for pattern in self.images)

    def expired(self, now: datetime.datetime) -> bool:
        return now >= self.expires


@dataclass(frozen=True, slots=True)
class VulnerabilityGate:
    """``spec.vulnerabilities``: which findings deny a pod, and what an unscanned image gets."""

    severity_threshold: Severity = Severity.CRITICAL
    unscanned: UnscannedAction = UnscannedAction.WARN
    max_scan_age: datetime.timedelta | None = None
    exceptions: tuple[VulnerabilityException, ...] = ()

    @property
    def allows_unscanned(self) -> bool:
        return self.unscanned is UnscannedAction.ALLOW

    @property
    def warns_unscanned(self) -> bool:
        """An unscanned image is a hint (a kubectl warning), never a violation."""
        return self.unscanned is UnscannedAction.WARN
