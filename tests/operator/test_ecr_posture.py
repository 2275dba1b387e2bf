"""ECR repository posture, judged from settings alone: each rule's pass and fail cases."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mamori.policy.terms import Severity
from mamori_operator.registry.fetch import scrub
from mamori_operator.registry.posture import (
    Check,
    PostureSettings,
    RegistryScanning,
    Repository,
    ScanRule,
    filter_matches,
    judge_repository,
)

ACCOUNT = "123456789012"
OTHER = "111122223333"
LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 50,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)
HARDENED = Repository(
    name="shop/web",
    arn=f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/shop/web",
    region="eu-west-1",
    registry_id=ACCOUNT,
    tag_mutability="IMMUTABLE",
    scan_on_push=True,
    encryption_type="KMS",
    kms_key=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234",
    lifecycle_policy=LIFECYCLE,
)
BASIC = RegistryScanning()
PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]

Verdict = list[tuple[Check, Severity, bool]]


def verdict(
    repository: Repository,
    scanning: RegistryScanning = BASIC,
    known: frozenset[str] = frozenset(),
) -> Verdict:
    findings = judge_repository(repository, scanning, PostureSettings(known_accounts=known))
    return [(f.id, f.severity, f.advisory) for f in findings]


def test_a_hardened_repository_has_no_finding() -> None:
    assert verdict(HARDENED) == []


@pytest.mark.parametrize(
    ("mutability", "exclusions", "expected"),
    [
        ("IMMUTABLE", (), []),
        ("MUTABLE", (), [(Check.TAG_IMMUTABILITY, Severity.MEDIUM, False)]),
        (
            "IMMUTABLE_WITH_EXCLUSION",
            ("latest", "dev-*"),
            [(Check.TAG_IMMUTABILITY, Severity.LOW, True)],
        ),
        ("IMMUTABLE_WITH_EXCLUSION", ("*",), [(Check.TAG_IMMUTABILITY, Severity.MEDIUM, False)]),
        (
            "IMMUTABLE_WITH_EXCLUSION",
            ("v*", "**"),
            [(Check.TAG_IMMUTABILITY, Severity.MEDIUM, False)],
        ),
        ("MUTABLE_WITH_EXCLUSION", ("v*",), [(Check.TAG_IMMUTABILITY, Severity.MEDIUM, False)]),
        ("SOMETHING_NEW", (), [(Check.TAG_IMMUTABILITY, Severity.MEDIUM, False)]),
    ],
)
def test_tag_immutability(mutability: str, exclusions: tuple[str, ...], expected: Verdict) -> None:
    repository = dataclasses.replace(
        HARDENED, tag_mutability=mutability, mutability_exclusions=exclusions
    )
    assert verdict(repository) == expected


def test_tag_immutability_names_the_exclusions_and_the_fix() -> None:
    repository = dataclasses.replace(
        HARDENED, tag_mutability="IMMUTABLE_WITH_EXCLUSION", mutability_exclusions=("latest",)
    )
    [finding] = judge_repository(repository, BASIC)
    assert "'latest'" in finding.message
    assert finding.fix == (
        "aws ecr put-image-tag-mutability --repository-name shop/web --region eu-west-1 "
        "--image-tag-mutability IMMUTABLE"
    )


def rules(scan_type: str, *pairs: tuple[str, str]) -> RegistryScanning:
    return RegistryScanning(scan_type, tuple(ScanRule(freq, (pattern,)) for freq, pattern in pairs))


@pytest.mark.parametrize(
    ("scan_on_push", "scanning", "scanned"),
    [
        (True, BASIC, True),
        (False, BASIC, False),
        (False, rules("BASIC", ("SCAN_ON_PUSH", "shop/*")), True),
        (False, rules("BASIC", ("SCAN_ON_PUSH", "shop")), True),  # no wildcard: a substring
        (False, rules("BASIC", ("SCAN_ON_PUSH", "cart/*")), False),
        (False, rules("BASIC", ("MANUAL", "*")), False),
        (False, rules("ENHANCED", ("CONTINUOUS_SCAN", "shop/*")), True),
        (False, rules("ENHANCED", ("SCAN_ON_PUSH", "*")), True),
        (False, rules("ENHANCED", ("CONTINUOUS_SCAN", "cart/*")), False),
        (False, rules("ENHANCED"), False),
        (True, rules("ENHANCED", ("CONTINUOUS_SCAN", "cart/*")), False),  # ignored under Inspector
        (True, rules("ENHANCED", ("SCAN_ON_PUSH", "shop/*")), True),
    ],
)
def test_scan_on_push(scan_on_push: bool, scanning: RegistryScanning, scanned: bool) -> None:
    repository = dataclasses.replace(HARDENED, scan_on_push=scan_on_push)
    expected = [] if scanned else [(Check.SCAN_ON_PUSH, Severity.MEDIUM, False)]
    assert verdict(repository, scanning) == expected


@pytest.mark.parametrize(
    ("scanning", "command"),
    [
        (BASIC, "aws ecr put-image-scanning-configuration --repository-name shop/web"),
        (
            rules("ENHANCED", ("CONTINUOUS_SCAN", "cart/*")),
            "aws ecr put-registry-scanning-configuration --scan-type ENHANCED",
        ),
    ],
)
def test_scan_on_push_fix_follows_the_scan_type(scanning: RegistryScanning, command: str) -> None:
    repository = dataclasses.replace(HARDENED, scan_on_push=False)
    [finding] = judge_repository(repository, scanning)
    assert command in finding.fix
    if scanning.scan_type == "ENHANCED":  # the existing rules are kept in the suggested call
        assert '"filter":"cart/*"' in finding.fix and '"filter":"shop/web"' in finding.fix


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*", "shop/web", True),
        ("shop", "myshop/web", True),
        ("shop/*", "shop/web", True),
        ("shop/*", "myshop/web", False),
        ("*web", "shop/web", True),
        ("*web", "shop/webapp", False),
        ("a.b*", "axb", False),
        ("prod-*-api", "prod-eu-api", True),
    ],
)
def test_scanning_filters(pattern: str, name: str, matches: bool) -> None:
    assert filter_matches(pattern, name) is matches


@pytest.mark.parametrize(
    ("encryption", "expected"),
    [
        ("KMS", []),
        ("KMS_DSSE", []),
        ("AES256", [(Check.ENCRYPTION, Severity.LOW, True)]),
    ],
)
def test_encryption(encryption: str, expected: Verdict) -> None:
    assert verdict(dataclasses.replace(HARDENED, encryption_type=encryption)) == expected


def test_encryption_fix_says_it_needs_a_new_repository() -> None:
    [finding] = judge_repository(dataclasses.replace(HARDENED, encryption_type="AES256"), BASIC)
    assert "aws ecr create-repository --repository-name shop/web" in finding.fix
    assert "encryptionType=KMS" in finding.fix and "Encryption settings" in finding.fix


@pytest.mark.parametrize(
    ("lifecycle", "expected"),
    [
        (LIFECYCLE, []),
        (None, [(Check.LIFECYCLE_POLICY, Severity.LOW, True)]),
        ('{"rules": []}', [(Check.LIFECYCLE_POLICY, Severity.LOW, True)]),
        ("not json", [(Check.LIFECYCLE_POLICY, Severity.LOW, True)]),
    ],
)
def test_lifecycle_policy(lifecycle: str | None, expected: Verdict) -> None:
    assert verdict(dataclasses.replace(HARDENED, lifecycle_policy=lifecycle)) == expected


def test_lifecycle_fix_is_a_policy_ecr_accepts() -> None:
    [finding] = judge_repository(dataclasses.replace(HARDENED, lifecycle_policy=None), BASIC)
    assert finding.fix.startswith(
        "aws ecr put-lifecycle-policy --repository-name shop/web --region eu-west-1 "
        "--lifecycle-policy-text '"
    )
    text = finding.fix.split("--lifecycle-policy-text ", 1)[1].strip("'")
    assert json.loads(text)["rules"][0]["action"] == {"type": "expire"}


def statement(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": "*", "Action": PULL, **fields}


def without(statement: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in statement.items() if name != key}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


PUBLIC = [(Check.REPOSITORY_POLICY, Severity.HIGH, False)]
UNKNOWN = [(Check.REPOSITORY_POLICY, Severity.MEDIUM, False)]
ORG = {"StringEquals": {"aws:PrincipalOrgID": "o-abcdef1234"}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, []),
        (policy(statement()), PUBLIC),
        (policy(statement(Principal={"AWS": "*"}, Action="ecr:*")), PUBLIC),
        (policy(statement(Principal={"AWS": ["*"]}, Action="*")), PUBLIC),
        (policy(statement(Action="ecr:batch*")), PUBLIC),  # actions match case-insensitively
        (policy(statement(Action="ecr:GetDownloadUrlFor?ayer")), PUBLIC),
        (policy(statement(Action=["ecr:PutImage", "ecr:InitiateLayerUpload"])), []),
        (policy(statement(Action="ecr:Describe*")), []),
        (json.dumps({"Statement": statement()}), PUBLIC),  # one statement, not a list
        (policy(without(statement(NotAction="ecr:PutImage"), "Action")), PUBLIC),
        (policy(without(statement(NotAction="ecr:*"), "Action")), []),
        (policy(without(statement(NotPrincipal={"AWS": OTHER}), "Principal")), PUBLIC),
        (policy(statement(Effect="Deny")), []),
        (policy(statement(Condition=ORG)), []),
        (policy(statement(Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}})), []),
        (policy(statement(Condition={"StringEquals": {"aws:PrincipalAccount": [ACCOUNT]}})), []),
        (
            policy(
                statement(
                    Condition={"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-a/r-b/*"}}
                )
            ),
            [],
        ),
        (
            policy(statement(Condition={"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abc"}})),
            PUBLIC,
        ),
        (policy(statement(Condition={"StringLike": {"aws:PrincipalOrgID": "*"}})), PUBLIC),
        (policy(statement(Condition={"StringNotEquals": {"aws:PrincipalOrgID": "o-abc"}})), PUBLIC),
        (policy(statement(Condition={"Bool": {"aws:SecureTransport": "true"}})), PUBLIC),
        (
            policy(
                statement(Condition={"ForAllValues:StringEquals": {"aws:PrincipalOrgID": "o-a"}})
            ),
            PUBLIC,
        ),
        (
            policy(
                statement(),
                statement(
                    Effect="Deny",
                    Action="ecr:*",
                    Condition={"StringNotEquals": {"aws:PrincipalOrgID": "o-abcdef1234"}},
                ),
            ),
            [],  # a public Allow fenced by a Deny for everyone outside the organization
        ),
        (policy(statement(), statement(Effect="Deny", Action="ecr:PutImage")), PUBLIC),
        (policy(statement(Principal={"AWS": f"arn:aws:iam::{OTHER}:root"})), UNKNOWN),
        (policy(statement(Principal={"AWS": [OTHER]}, Condition=ORG)), UNKNOWN),
        (policy(statement(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:role/ci"})), []),
        (
            policy(
                statement(Principal={"AWS": f"arn:aws:iam::{OTHER}:root"}, Action="ecr:PutImage")
            ),
            [],
        ),
        (policy(statement(Principal={"Service": "build.example.internal"})), []),
        (policy(statement(), statement(Principal={"AWS": OTHER})), PUBLIC + UNKNOWN),
        ("this is not a policy", UNKNOWN),
        ('["a list"]', UNKNOWN),
    ],
)
def test_repository_policy(text: str | None, expected: Verdict) -> None:
    assert verdict(dataclasses.replace(HARDENED, repository_policy=text)) == expected


def test_known_accounts_may_be_granted_pulls() -> None:
    text = policy(statement(Sid="Staging", Principal={"AWS": f"arn:aws:iam::{OTHER}:root"}))
    repository = dataclasses.replace(HARDENED, repository_policy=text)
    [finding] = judge_repository(repository, BASIC)
    assert f"{OTHER} by statement 'Staging'" in finding.message
    assert f"--known-account {OTHER}" in finding.fix
    assert verdict(repository, known=frozenset({OTHER})) == []


def test_public_finding_names_the_statement_and_the_fix() -> None:
    repository = dataclasses.replace(HARDENED, repository_policy=policy(statement(Sid="Anyone")))
    [finding] = judge_repository(repository, BASIC)
    assert "statement 'Anyone' allows anyone to pull" in finding.message
    assert "aws:PrincipalOrgID" in finding.fix
    assert "aws ecr set-repository-policy --repository-name shop/web --region eu-west-1" in (
        finding.fix
    )


def test_findings_serialize_with_the_repository_and_severity() -> None:
    repository = dataclasses.replace(HARDENED, tag_mutability="MUTABLE")
    [finding] = judge_repository(repository, BASIC)
    assert finding.to_dict() == {
        "id": "ecr-tag-immutability",
        "repository": "shop/web",
        "arn": HARDENED.arn,
        "region": "eu-west-1",
        "severity": "MEDIUM",
        "advisory": False,
        "message": finding.message,
        "fix": finding.fix,
    }
    first, second = finding.render().splitlines()
    assert first.startswith("[ecr-tag-immutability] shop/web (eu-west-1) MEDIUM: image tags")
    assert second == f"    fix: {finding.fix}"


def test_every_finding_id_is_documented_with_its_fix() -> None:
    text = (Path(__file__).parents[2] / "docs" / "ecr-posture.md").read_text()
    for check in Check:
        assert f"## `{check.value}`" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        (
            "Parameter validation failed:\n  Invalid length",
            "Parameter validation failed: Invalid length",
        ),
        ("key AKIAIOSFODNN7EXAMPLE is bad", "key <access-key-id> is bad"),
        ("x" * 400, "x" * 297 + "..."),
    ],
)
def test_aws_messages_are_scrubbed_before_they_are_shown(text: str, expected: str) -> None:
    assert scrub(text) == expected
