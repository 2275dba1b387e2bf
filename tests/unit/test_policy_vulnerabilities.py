"""``spec.vulnerabilities``: the section parser reads every field, and names the wrong one."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from mamori.policy import PolicyError, parse_policy
from mamori.policy.terms import Severity
from mamori.scans import UnscannedAction, VulnerabilityGate

UTC = datetime.UTC


def document(section: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": "gate"},
        "spec": {"vulnerabilities": section},
    }


def gate(section: Any) -> VulnerabilityGate | None:
    return parse_policy(document(section)).rules.vulnerabilities


def exception(**fields: Any) -> dict[str, Any]:
    return {"vulnerability": "CVE-2026-1111", "expires": "2026-12-31", "reason": "no fix", **fields}


def test_absent_or_null_section_gates_nothing_and_plans_no_scan_rule() -> None:
    for spec in ({}, {"vulnerabilities": None}):
        policy = parse_policy({**document(None), "spec": spec})
        assert policy.rules.vulnerabilities is None
        assert policy.plan.evidence_checks == ()
        assert "image-vulnerabilities" not in {rule.id for rule in policy.plan.rules}


def test_empty_section_has_the_declared_defaults_and_plans_the_rule() -> None:
    policy = parse_policy(document({}))
    assert policy.rules.vulnerabilities == VulnerabilityGate(
        severity_threshold=Severity.CRITICAL,
        unscanned=UnscannedAction.WARN,
        max_scan_age=None,
        exceptions=(),
    )
    assert [rule_id for rule_id, _ in policy.plan.evidence_checks] == ["image-vulnerabilities"]
    assert "image-vulnerabilities" not in {rule_id for rule_id, _ in policy.plan.checks}


def test_every_field_is_read() -> None:
    read = gate(
        {
            "severityThreshold": "HIGH",
            "unscanned": "Deny",
            "maxScanAge": "168h",
            "exceptions": [
                exception(images=["registry.example/acme", "*.example.test/team"]),
                exception(vulnerability="GHSA-abcd-efgh-ijkl", expires="2026-06-01T12:00:00Z"),
            ],
        }
    )
    assert read is not None
    assert read.severity_threshold is Severity.HIGH
    assert read.unscanned is UnscannedAction.DENY
    assert read.max_scan_age == datetime.timedelta(hours=168)
    first, second = read.exceptions
    assert [str(p) for p in first.images] == ["registry.example/acme", "*.example.test/team"]
    assert first.expires == datetime.datetime(2027, 1, 1, tzinfo=UTC)  # the end of that day
    assert first.reason == "no fix"
    assert second.vulnerability == "GHSA-abcd-efgh-ijkl"
    assert second.images == ()
    assert second.expires == datetime.datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "expires"),
    [
        pytest.param(
            datetime.date(2026, 3, 1), datetime.datetime(2026, 3, 2, tzinfo=UTC), id="yaml-date"
        ),
        pytest.param(
            datetime.datetime(2026, 3, 1, 8, tzinfo=UTC),
            datetime.datetime(2026, 3, 1, 8, tzinfo=UTC),
            id="yaml-datetime",
        ),
        pytest.param(
            "2026-03-01T08:00:00+09:00",
            datetime.datetime(2026, 2, 28, 23, tzinfo=UTC),
            id="offset",
        ),
    ],
)
def test_expiry_as_yaml_hands_it_over(written: Any, expires: datetime.datetime) -> None:
    read = gate({"exceptions": [exception(expires=written)]})
    assert read is not None
    assert read.exceptions[0].expires == expires


INVALID = [
    ("not-an-object", [], "spec.vulnerabilities: must be an object"),
    ("unknown-field", {"threshold": "HIGH"}, "spec.vulnerabilities.threshold: unknown field"),
    (
        "threshold",
        {"severityThreshold": "critical"},
        "spec.vulnerabilities.severityThreshold: must be one of CRITICAL, HIGH, MEDIUM, LOW",
    ),
    (
        "unscanned",
        {"unscanned": "Block"},
        "spec.vulnerabilities.unscanned: must be one of Deny, Warn, Allow",
    ),
    ("age-days", {"maxScanAge": "7d"}, "spec.vulnerabilities.maxScanAge: must be a duration"),
    ("age-short", {"maxScanAge": "2s"}, "spec.vulnerabilities.maxScanAge: must be at least 5s"),
    ("exceptions-type", {"exceptions": {}}, "spec.vulnerabilities.exceptions: must be a list"),
    (
        "exception-field",
        {"exceptions": [exception(until="2026-01-01")]},
        "spec.vulnerabilities.exceptions[0].until: unknown field",
    ),
    (
        "no-vulnerability",
        {"exceptions": [exception(vulnerability=None)]},
        "spec.vulnerabilities.exceptions[0].vulnerability: must be set",
    ),
    (
        "bad-vulnerability",
        {"exceptions": [exception(vulnerability="CVE 2026 1")]},
        "spec.vulnerabilities.exceptions[0].vulnerability: must be an advisory ID",
    ),
    (
        "no-expiry",
        {"exceptions": [exception(), exception(expires=None)]},
        "spec.vulnerabilities.exceptions[1].expires: must be set",
    ),
    (
        "bad-expiry",
        {"exceptions": [exception(expires="next year")]},
        "spec.vulnerabilities.exceptions[0].expires: must be an RFC 3339 date",
    ),
    (
        "expiry-without-offset",
        {"exceptions": [exception(expires="2026-12-31T12:00:00")]},
        "spec.vulnerabilities.exceptions[0].expires: must be an RFC 3339 date",
    ),
    (
        "impossible-date",
        {"exceptions": [exception(expires="2026-02-30")]},
        "spec.vulnerabilities.exceptions[0].expires: must be an RFC 3339 date",
    ),
    (
        "no-reason",
        {"exceptions": [exception(reason=None)]},
        "spec.vulnerabilities.exceptions[0].reason: must be set",
    ),
    (
        "blank-reason",
        {"exceptions": [exception(reason="  ")]},
        "spec.vulnerabilities.exceptions[0].reason: must say why",
    ),
    (
        "images-type",
        {"exceptions": [exception(images="registry.example/acme")]},
        "spec.vulnerabilities.exceptions[0].images: must be a list",
    ),
    (
        "image-pattern",
        {"exceptions": [exception(images=["registry.example/acme", "https://registry.example"])]},
        "spec.vulnerabilities.exceptions[0].images[1]: ",
    ),
]


@pytest.mark.parametrize(("section", "message"), [pytest.param(s, m, id=i) for i, s, m in INVALID])
def test_invalid_fields_are_named(section: Any, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document(section))
    assert str(caught.value).startswith(message), str(caught.value)
