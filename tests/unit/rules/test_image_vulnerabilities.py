"""image-vulnerabilities over a fixed scan table: what denies, warns, passes, and what it says."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from mamori.engine import evaluate, uses_scans
from mamori.findings import Decision, Enforcement
from mamori.policy import Policy, parse_policy
from mamori.policy.terms import Severity
from mamori.scans import ScanFinding, ScanResult, ScanTable

NOW = datetime.datetime(2026, 11, 29, 12, tzinfo=datetime.UTC)
RULE = "image-vulnerabilities"
VULNERABLE = "sha256:" + "c1" * 32
CLEAN = "sha256:" + "0a" * 32
MEDIUM_ONLY = "sha256:" + "3e" * 32
OLD = "sha256:" + "01" * 32
UNDATED = "sha256:" + "0d" * 32
TRUNCATED = "sha256:" + "7c" * 32
UNKNOWN = "sha256:" + "ff" * 32
MANY = "sha256:" + "99" * 32


def result(
    digest: str, *findings: tuple[str, Severity], age: datetime.timedelta | None = None
) -> ScanResult:
    counts: dict[Severity, int] = {}
    for _, severity in findings:
        counts[severity] = counts.get(severity, 0) + 1
    return ScanResult(
        digest=digest,
        scanner="trivy-0.58",
        scanned_at=None if age is None else NOW - age,
        counts=counts,
        findings=tuple(ScanFinding(i, s) for i, s in findings),
    )


HOURS_3 = datetime.timedelta(hours=3)
TABLE = ScanTable(
    {
        VULNERABLE: result(
            VULNERABLE,
            ("CVE-2026-1111", Severity.CRITICAL),
            ("CVE-2026-2222", Severity.HIGH),
            ("CVE-2026-3333", Severity.MEDIUM),
            age=HOURS_3,
        ),
        CLEAN: result(CLEAN, ("CVE-2026-0001", Severity.LOW), age=HOURS_3),
        MEDIUM_ONLY: result(MEDIUM_ONLY, ("CVE-2026-4444", Severity.MEDIUM), age=HOURS_3),
        OLD: result(OLD, age=datetime.timedelta(days=9)),
        UNDATED: result(UNDATED),
        TRUNCATED: ScanResult(
            digest=TRUNCATED,
            scanner="ecr-enhanced",
            scanned_at=NOW - HOURS_3,
            counts={Severity.CRITICAL: 3},
            findings=(ScanFinding("CVE-2026-5555", Severity.CRITICAL),),
        ),
        MANY: result(
            MANY, *((f"CVE-2026-10{n:02d}", Severity.CRITICAL) for n in range(7)), age=HOURS_3
        ),
    },
    at=NOW,
)


def policy(enforcement: str = "Enforce", **section: Any) -> Policy:
    return parse_policy(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "gate"},
            "spec": {
                "enforcement": enforcement,
                "podSecurity": "privileged",  # the scan gate alone
                "vulnerabilities": section,
            },
        }
    )


def pod(*images: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "apps"},
        "spec": {
            "containers": [{"name": f"c{n}", "image": image} for n, image in enumerate(images)]
        },
    }


def judged(manifest: dict[str, Any], chosen: Policy) -> Decision:
    decision = evaluate(manifest, [chosen], scans=TABLE)
    assert decision is not None
    return decision


def at(digest: str, repository: str = "registry.example/acme/api") -> str:
    return f"{repository}@{digest}"


def exception(vulnerability: str, expires: str, **extra: Any) -> dict[str, Any]:
    return {"vulnerability": vulnerability, "expires": expires, "reason": "vendor", **extra}


FUTURE, PAST = "2027-01-01", "2026-11-28"

CASES = [
    # (id, section, images, violations (containers), advice (containers), message parts)
    ("critical-denied", {}, [at(VULNERABLE)], ["c0"], [], ["CVE-2026-1111 (CRITICAL)"]),
    ("below-threshold", {}, [at(MEDIUM_ONLY)], [], [], []),
    ("low-only-at-high", {"severityThreshold": "HIGH"}, [at(CLEAN)], [], [], []),
    (
        "high-threshold-lists-worst-first",
        {"severityThreshold": "HIGH"},
        [at(VULNERABLE)],
        ["c0"],
        [],
        ["2 findings at or above HIGH: CVE-2026-1111 (CRITICAL), CVE-2026-2222 (HIGH)"],
    ),
    (
        "medium-threshold",
        {"severityThreshold": "MEDIUM"},
        [at(MEDIUM_ONLY)],
        ["c0"],
        [],
        ["CVE-2026-4444 (MEDIUM)"],
    ),
    (
        "excepted-until-future",
        {"exceptions": [exception("CVE-2026-1111", FUTURE)]},
        [at(VULNERABLE)],
        [],
        [],
        [],
    ),
    (
        "exception-id-case-insensitive",
        {"exceptions": [exception("cve-2026-1111", FUTURE)]},
        [at(VULNERABLE)],
        [],
        [],
        [],
    ),
    (
        "exception-expired",
        {"exceptions": [exception("CVE-2026-1111", PAST)]},
        [at(VULNERABLE)],
        ["c0"],
        [],
        ["CVE-2026-1111 (CRITICAL)", f"the exception for CVE-2026-1111 expired ({PAST})"],
    ),
    (
        "exception-for-another-cve",
        {"exceptions": [exception("CVE-2026-9999", FUTURE)]},
        [at(VULNERABLE)],
        ["c0"],
        [],
        ["CVE-2026-1111 (CRITICAL)"],
    ),
    (
        "exception-for-this-image",
        {"exceptions": [exception("CVE-2026-1111", FUTURE, images=["registry.example/acme"])]},
        [at(VULNERABLE)],
        [],
        [],
        [],
    ),
    (
        "exception-for-other-images",
        {"exceptions": [exception("CVE-2026-1111", FUTURE, images=["registry.example/other"])]},
        [at(VULNERABLE)],
        ["c0"],
        [],
        ["CVE-2026-1111 (CRITICAL)"],
    ),
    (
        "unlisted-findings-cannot-be-excepted",
        {"exceptions": [exception("CVE-2026-5555", FUTURE)]},
        [at(TRUNCATED)],
        ["c0"],
        [],
        ["2 findings at or above CRITICAL: 2 not listed in the ImageScan"],
    ),
    (
        "at-most-five-shown",
        {},
        [at(MANY)],
        ["c0"],
        [],
        ["7 findings", "CVE-2026-1004 (CRITICAL) and 2 more"],
    ),
    (
        "no-imagescan-warns",
        {},
        [at(UNKNOWN)],
        [],
        ["c0"],
        ["has no scan (no ImageScan for its digest)"],
    ),
    ("no-imagescan-deny", {"unscanned": "Deny"}, [at(UNKNOWN)], ["c0"], [], ["no ImageScan"]),
    ("no-imagescan-allow", {"unscanned": "Allow"}, [at(UNKNOWN)], [], [], []),
    (
        "tag-only-is-unscanned",
        {"unscanned": "Deny"},
        ["registry.example/acme/api:1.2"],
        ["c0"],
        [],
        ["is not pinned by digest", "pin it by digest (registry.example/acme/api@sha256:<digest>)"],
    ),
    (
        "tag-only-warns",
        {},
        ["registry.example/acme/api:1.2"],
        [],
        ["c0"],
        ["is not pinned by digest"],
    ),
    ("old-scan-counts-when-no-max-age", {}, [at(OLD)], [], [], []),
    (
        "scan-older-than-max-age",
        {"maxScanAge": "168h", "unscanned": "Deny"},
        [at(OLD)],
        ["c0"],
        [],
        ["is 9d old, older than maxScanAge 7d"],
    ),
    ("fresh-scan-within-max-age", {"maxScanAge": "168h"}, [at(CLEAN)], [], [], []),
    (
        "undated-scan-with-max-age",
        {"maxScanAge": "1h"},
        [at(UNDATED)],
        [],
        ["c0"],
        ["does not say when it ran"],
    ),
    (
        "stale-vulnerable-scan-is-unscanned",
        {"maxScanAge": "1h", "unscanned": "Allow"},
        [at(VULNERABLE)],
        [],
        [],
        [],
    ),
    (
        "each-container-judged",
        {},
        [at(CLEAN), at(VULNERABLE, "registry.example/acme/worker"), "registry.example/acme/api:1"],
        ["c1"],
        ["c2"],
        ['container "c1" image \'registry.example/acme/worker@' + VULNERABLE],
    ),
]


@pytest.mark.parametrize(
    ("section", "images", "denied", "advised", "parts"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_rule_over_a_scan_table(
    section: dict[str, Any],
    images: list[str],
    denied: list[str],
    advised: list[str],
    parts: list[str],
) -> None:
    decision = judged(pod(*images), policy(**section))
    assert [v.container for v in decision.violations] == denied
    assert [v.container for v in decision.advice] == advised
    assert all(v.rule == RULE for v in (*decision.violations, *decision.advice))
    assert decision.allowed is not denied
    messages = " ".join(v.message for v in (*decision.violations, *decision.advice))
    for part in parts:
        assert part in messages, messages


def test_a_denial_names_image_scan_age_scanner_and_fix() -> None:
    (violation,) = judged(pod(at(VULNERABLE)), policy()).denials
    assert violation.field == "spec.containers[0].image"
    assert violation.message == (
        f"container \"c0\" image '{at(VULNERABLE)}' has 1 finding at or above CRITICAL: "
        f"CVE-2026-1111 (CRITICAL) (ImageScan sha256-{'c1' * 32}, scanned by trivy-0.58 3h "
        "ago); rebuild the image on a patched base image and deploy the new digest, or, if a "
        "finding does not apply, add it to the policy's spec.vulnerabilities.exceptions with "
        "an expiry and a reason"
    )


@pytest.mark.parametrize(
    ("enforcement", "kind"),
    [("Enforce", "denials"), ("Warn", "warnings"), ("Audit", "audits")],
)
def test_enforcement_decides_what_a_finding_does(enforcement: str, kind: str) -> None:
    decision = judged(pod(at(VULNERABLE)), policy(enforcement))
    assert [v.rule for v in getattr(decision, kind)] == [RULE]
    assert decision.allowed is (enforcement != "Enforce")
    assert decision.violations[0].enforcement is Enforcement(enforcement)


def test_unscanned_warn_is_advice_under_every_enforcement() -> None:
    for enforcement in ("Enforce", "Warn", "Audit"):
        decision = judged(pod(at(UNKNOWN)), policy(enforcement))
        assert decision.allowed and decision.violations == ()
        assert [v.rule for v in decision.advice] == [RULE]


def test_without_a_scan_source_the_rule_is_skipped_and_callers_can_tell() -> None:
    chosen = policy(unscanned="Deny")
    assert evaluate(pod(at(VULNERABLE), "registry.example/acme/api:1"), [chosen]) == Decision(
        policies=("gate",)
    )
    assert uses_scans([chosen])
    plain = parse_policy({**_bare(), "spec": {"podSecurity": "privileged"}})
    assert not uses_scans([plain])
    assert evaluate(pod(at(VULNERABLE)), [plain], scans=TABLE) == Decision(policies=("gate",))


def _bare() -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": "gate"},
    }


class Unreadable:
    """A scan source that cannot be read (the webhook's index when listing ImageScans fails)."""

    def scan(self, digest: str) -> ScanResult | None:
        raise AssertionError("an unavailable source is not asked")

    def now(self) -> datetime.datetime:
        return NOW

    def unavailable(self) -> str | None:
        return "listing ImageScans failed: 403 Forbidden"


@pytest.mark.parametrize(("unscanned", "denied"), [("Deny", True), ("Warn", False)])
def test_an_unreadable_scan_source_counts_as_unscanned_with_its_reason(
    unscanned: str, denied: bool
) -> None:
    decision = evaluate(pod(at(CLEAN)), [policy(unscanned=unscanned)], scans=Unreadable())
    assert decision is not None
    (finding,) = (*decision.violations, *decision.advice)
    assert finding.rule == RULE
    assert (finding in decision.violations) is denied
    assert "its scan cannot be looked up (listing ImageScans failed: 403 Forbidden)" in (
        finding.message
    )


def resolving_policy(resolve: bool) -> Policy:
    return parse_policy(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "gate"},
            "spec": {
                "podSecurity": "privileged",
                "resolveImageTags": resolve,
                "vulnerabilities": {"unscanned": "Deny"},
            },
        }
    )


RESOLVED_CASES = [
    # (id, resolveImageTags, image, denied, message part)
    ("tag-of-vulnerable-digest", True, "registry.example/acme/api:1.0", True,
     f"image 'registry.example/acme/api:1.0' ({VULNERABLE}, what its tag points to now) has "
     "1 finding"),
    ("tag-of-clean-digest", True, "registry.example/acme/api:clean", False, ""),
    ("tag-not-resolvable", True, "registry.example/acme/api:down", True,
     "its tag could not be resolved to a digest (the registry is unreachable or failing"),
    ("without-the-switch-a-tag-is-unscanned", False, "registry.example/acme/api:1.0", True,
     "is not pinned by digest"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "resolve", "image", "denied", "says"),
    RESOLVED_CASES,
    ids=[c[0] for c in RESOLVED_CASES],
)
def test_resolve_image_tags_judges_the_digest_a_tag_points_to(
    case: str, resolve: bool, image: str, denied: bool, says: str
) -> None:
    from tests.unit.rules.test_image_signatures import RegistryTable

    registry = RegistryTable(
        {"registry.example/acme/api:1.0": VULNERABLE, "registry.example/acme/api:clean": CLEAN},
        {},
    )
    decision = evaluate(pod(image), [resolving_policy(resolve)], scans=TABLE, registry=registry)
    assert decision is not None
    assert decision.allowed is not denied
    assert all(says in v.message for v in decision.violations)
    assert registry.asked == ([f"tag {image}"] if resolve else [])
