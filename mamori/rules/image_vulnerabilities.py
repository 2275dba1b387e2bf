"""image-vulnerabilities: no container runs an image known to be vulnerable.

Spec: when a policy has ``spec.vulnerabilities``, each init, regular and ephemeral container
image is judged by the scan of its digest (an ImageScan, through the caller's
:class:`~mamori.scans.ScanLookup`):

- a finding at or above ``severityThreshold`` (``UNKNOWN`` never counts) that no unexpired
  exception covers is a violation (the policy's enforcement decides deny, warn or audit); a
  finding counted in the scan's summary but not listed in it cannot be excepted;
- an image the gate cannot judge (not pinned by digest, no ImageScan for the digest, or a scan
  older than ``maxScanAge`` or of unknown age when that is set) gets ``unscanned``: a
  violation under ``Deny``, a hint (kubectl warning) under ``Warn``, nothing under ``Allow``.

With ``resolveImageTags`` and a caller that can ask registries, a tag-only image is judged by
the scan of the digest its tag points to now, and the message names that digest; a tag that
cannot be resolved is ``unscanned``, with the registry's reason.

Images that do not parse are left to ``image-reference``. Without a scan lookup (``mamori
check`` offline) the rule is not run at all: it cannot know, and does not guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mamori.findings import Finding
from mamori.images import ImageReference
from mamori.podspec import ContainerRef, PodContext
from mamori.rules.registry import ImageEvidence, Level, Needs, RuleSettings, evidence_rule

if TYPE_CHECKING:  # mamori.scans reads the policy's terms, whose package imports the rules
    import datetime

    from mamori.scans import ScanFinding, ScanLookup, ScanResult, VulnerabilityGate
    from mamori.supplychain.lookup import RegistryLookup

RULE_ID = "image-vulnerabilities"
RESOLVE_TAGS = "resolveImageTags"
SHOWN_FINDINGS = 5
DIGEST_ALGORITHM = "sha256"
HOW_TO_FIX = (
    "rebuild the image on a patched base image and deploy the new digest, or, if a finding "
    "does not apply, add it to the policy's spec.vulnerabilities.exceptions with an expiry "
    "and a reason"
)
HOW_TO_SCAN = (
    "scan the image and record the result as an ImageScan named after its digest "
    "(sha256-<hex>), or mirror it from ECR or Trivy Operator (spec.imageScan)"
)


def gates_images(settings: RuleSettings) -> bool:
    """The rule is on only when the policy has a ``vulnerabilities`` section."""
    return settings.vulnerabilities is not None


@evidence_rule(
    rule_id=RULE_ID,
    level=Level.IMAGE,
    summary="no image with a known vulnerability at or above the policy's threshold",
    applies=gates_images,
    needs=frozenset({Needs.SCANS}),
)
def check_image_vulnerabilities(
    pod: PodContext, settings: RuleSettings, evidence: ImageEvidence
) -> list[Finding]:
    gate, scans = settings.vulnerabilities, evidence.scans
    findings: list[Finding] = []
    if gate is None or scans is None:
        return findings
    registry = evidence.registry if settings.switched_on(RESOLVE_TAGS) else None
    now = scans.now()
    for container, image, reference in pod.parsed_images():
        finding = judge_image(gate, container, image, reference, scans, now, registry=registry)
        if finding is not None:
            findings.append(finding)
    return findings


def judge_image(
    gate: VulnerabilityGate,
    container: ContainerRef,
    image: str,
    reference: ImageReference,
    scans: ScanLookup,
    now: datetime.datetime,
    *,
    registry: RegistryLookup | None = None,
) -> Finding | None:
    """The finding for one container's image, or None when it may run."""
    subject = f'container "{container.name}" image {image!r}'
    digest = reference.digest if reference.digest_algorithm == DIGEST_ALGORITHM else None
    if reference.digest is None and registry is not None:
        answer = registry.digest(reference)
        if answer.digest is None:
            return _unscanned(
                gate,
                container,
                f"{subject}: its tag could not be resolved to a digest ({answer.problem}), so "
                f"no scan can vouch for what will run; pin it by digest "
                f"({reference.name}@sha256:<digest>)",
            )
        digest = answer.digest
        subject = f"{subject} ({digest}, {answer.note})" if answer.note else f"{subject} ({digest})"
    if digest is None:
        return _unscanned(
            gate,
            container,
            f"{subject} is not pinned by digest, so no scan can vouch for what will run; pin it "
            f"by digest ({reference.name}@sha256:<digest>) and {HOW_TO_SCAN}",
        )
    problem = scans.unavailable()
    if problem is not None:
        return _unscanned(
            gate,
            container,
            f"{subject}: its scan cannot be looked up ({problem}); the webhook keeps trying",
        )
    from mamori.scans import image_scan_name  # loaded once a scan is judged

    scan_name = image_scan_name(digest)
    result = scans.scan(digest)
    if result is None:
        return _unscanned(
            gate,
            container,
            f"{subject} has no scan (no ImageScan for its digest); {HOW_TO_SCAN}",
        )
    stale = _staleness(gate, result, now)
    if stale:
        return _unscanned(
            gate,
            container,
            f"{subject}: {stale}; scan it again and update ImageScan {scan_name}",
        )
    return _judge_findings(gate, container, subject, reference, result, now)


def _judge_findings(
    gate: VulnerabilityGate,
    container: ContainerRef,
    subject: str,
    reference: ImageReference,
    result: ScanResult,
    now: datetime.datetime,
) -> Finding | None:
    from mamori.scans import image_scan_name

    threshold = gate.severity_threshold
    listed = [f for f in result.findings if f.severity >= threshold]  # thresholds are LOW+
    blocking: list[ScanFinding] = []
    expired: dict[str, str] = {}
    for finding in listed:
        covering = [e for e in gate.exceptions if e.covers(finding.id, reference)]
        if any(not e.expired(now) for e in covering):
            continue
        blocking.append(finding)
        if covering:
            expired[finding.id] = max(covering, key=lambda e: e.expires).expires_as_written
    unlisted = max(result.counted_at_or_above(threshold) - len(listed), 0)
    if not blocking and not unlisted:
        return None
    worst = sorted(blocking, key=lambda f: (-f.severity, f.id))
    shown = ", ".join(f"{f.id} ({f.severity.name})" for f in worst[:SHOWN_FINDINGS])
    more = max(len(worst) - SHOWN_FINDINGS, 0) + unlisted
    if more > 0:
        shown = f"{shown} and {more} more" if shown else f"{more} not listed in the ImageScan"
    count = len(blocking) + unlisted
    noun = "finding" if count == 1 else "findings"
    lapsed = "".join(
        f"; the exception for {finding_id} expired ({when})"
        for finding_id, when in sorted(expired.items())
    )
    return Finding(
        field=container.field("image"),
        container=container.name,
        message=f"{subject} has {count} {noun} at or above "
        f"{threshold.name}: {shown} (ImageScan {image_scan_name(result.digest)}, "
        f"{_provenance(result, now)}){lapsed}; {HOW_TO_FIX}",
    )


def _unscanned(gate: VulnerabilityGate, container: ContainerRef, message: str) -> Finding | None:
    if gate.allows_unscanned:
        return None
    return Finding(
        field=container.field("image"),
        container=container.name,
        message=message,
        advisory=gate.warns_unscanned,
    )


def _staleness(gate: VulnerabilityGate, result: ScanResult, now: datetime.datetime) -> str:
    """Why the scan is too old to count (empty when it counts)."""
    limit = gate.max_scan_age
    if limit is None:
        return ""
    if result.scanned_at is None:
        return f"its scan by {result.scanner} does not say when it ran (maxScanAge {_age(limit)})"
    age = now - result.scanned_at
    if age <= limit:
        return ""
    return f"its scan by {result.scanner} is {_age(age)} old, older than maxScanAge {_age(limit)}"


def _provenance(result: ScanResult, now: datetime.datetime) -> str:
    if result.scanned_at is None:
        return f"scanned by {result.scanner}, time not recorded"
    return f"scanned by {result.scanner} {_age(now - result.scanned_at)} ago"


def _age(delta: datetime.timedelta) -> str:
    """``3d4h``, ``5h12m``, ``40s``: two units at most, the way people say an age."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    shown = "".join(f"{n}{unit}" for n, unit in parts[:2] if n)
    return shown or "0s"
