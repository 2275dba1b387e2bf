"""Judge one ECR repository's settings: pure functions from settings to findings.

Each check answers one question about a repository and returns what is wrong with the exact fix
(an AWS CLI command, or the console setting when the CLI cannot change it). Finding IDs are
stable (``ecr-…``), documented in docs/ecr-posture.md, and never renamed. Severities use
:class:`mamori.policy.terms.Severity`; ``advisory`` means what it means in
:class:`mamori.findings.Finding`: a hint that never fails a check.
"""

from __future__ import annotations

import enum
import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mamori.policy.terms import Severity


class Check(enum.StrEnum):
    """The finding IDs, one per question asked of a repository."""

    TAG_IMMUTABILITY = "ecr-tag-immutability"
    SCAN_ON_PUSH = "ecr-scan-on-push"
    ENCRYPTION = "ecr-encryption"
    LIFECYCLE_POLICY = "ecr-lifecycle-policy"
    REPOSITORY_POLICY = "ecr-repository-policy"


PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
"""The two calls a client needs to pull an image; granting either to the world publishes it."""

RESTRICTING_KEYS = frozenset(
    {
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:sourcevpce",
        "aws:sourcevpc",
    }
)
"""Condition keys that narrow "everyone" to an organization, accounts, principals or a network."""

MATCHING_OPERATORS = frozenset(
    {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike"}
)
NEGATED_OPERATORS = frozenset(
    {"stringnotequals", "stringnotequalsignorecase", "stringnotlike", "arnnotequals", "arnnotlike"}
)
SCANNING_FREQUENCIES = frozenset({"SCAN_ON_PUSH", "CONTINUOUS_SCAN"})
KMS_TYPES = frozenset({"KMS", "KMS_DSSE"})
ACCOUNT_ARN = re.compile(r"^arn:[a-z-]+:(?:iam|sts)::(\d{12}):")
ACCOUNT_ID = re.compile(r"^\d{12}$")

EXAMPLE_LIFECYCLE_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "expire untagged images after 14 days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 14,
                },
                "action": {"type": "expire"},
            }
        ]
    },
    separators=(",", ":"),
)


@dataclass(frozen=True, slots=True)
class ScanRule:
    """One registry-level scanning rule: how often, for which repository filters."""

    frequency: str
    filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RegistryScanning:
    """GetRegistryScanningConfiguration: the scan type and its rules, for the whole registry."""

    scan_type: str = "BASIC"
    rules: tuple[ScanRule, ...] = ()

    def rule_covering(self, repository: str) -> ScanRule | None:
        """The first rule that scans ``repository`` automatically (on push or continuously)."""
        for rule in self.rules:
            if rule.frequency in SCANNING_FREQUENCIES and any(
                filter_matches(pattern, repository) for pattern in rule.filters
            ):
                return rule
        return None


@dataclass(frozen=True, slots=True)
class Repository:
    """What posture needs to know about one repository (DescribeRepositories and two Gets)."""

    name: str
    arn: str
    region: str
    registry_id: str
    tag_mutability: str = "MUTABLE"
    mutability_exclusions: tuple[str, ...] = ()
    scan_on_push: bool = False
    encryption_type: str = "AES256"
    kms_key: str = ""
    lifecycle_policy: str | None = None
    repository_policy: str | None = None


@dataclass(frozen=True, slots=True)
class PostureSettings:
    """Judgement settings: accounts that may be granted pulls besides the repository's own."""

    known_accounts: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PostureFinding:
    """One thing wrong with one repository, and the command that fixes it."""

    id: Check
    repository: str
    arn: str
    region: str
    severity: Severity
    message: str
    fix: str
    advisory: bool = False

    def to_dict(self) -> dict[str, object]:
        """The shape of ``mamori check --ecr --output json``."""
        return {
            "id": self.id.value,
            "repository": self.repository,
            "arn": self.arn,
            "region": self.region,
            "severity": self.severity.name,
            "advisory": self.advisory,
            "message": self.message,
            "fix": self.fix,
        }

    def render(self) -> str:
        """Two lines for terminals: ``[id] repository (region) SEVERITY: message`` and the fix."""
        level = f"{self.severity.name}{' advisory' if self.advisory else ''}"
        return (
            f"[{self.id.value}] {self.repository} ({self.region}) {level}: {self.message}\n"
            f"    fix: {self.fix}"
        )


@dataclass(frozen=True, slots=True)
class _Context:
    repository: Repository
    scanning: RegistryScanning
    settings: PostureSettings = field(default_factory=PostureSettings)

    def finding(
        self, check: Check, severity: Severity, message: str, fix: str, *, advisory: bool = False
    ) -> PostureFinding:
        repository = self.repository
        return PostureFinding(
            id=check,
            repository=repository.name,
            arn=repository.arn,
            region=repository.region,
            severity=severity,
            message=message,
            fix=fix,
            advisory=advisory,
        )

    def cli(self, *words: str) -> str:
        """An ``aws ecr`` command for this repository, its values shell-quoted."""
        repository = self.repository
        verb, *options = words
        arguments = [verb, "--repository-name", repository.name, "--region", repository.region]
        return "aws ecr " + " ".join(shlex.quote(word) for word in [*arguments, *options])


def judge_repository(
    repository: Repository,
    scanning: RegistryScanning,
    settings: PostureSettings | None = None,
) -> list[PostureFinding]:
    """Every finding for one repository, in the order of :class:`Check`."""
    context = _Context(repository, scanning, settings or PostureSettings())
    return [finding for check in CHECKS for finding in check(context)]


def check_tag_immutability(context: _Context) -> list[PostureFinding]:
    """A tag should name one image forever, or a pushed tag can change what a pod runs."""
    repository = context.repository
    mutability = repository.tag_mutability
    fix = context.cli("put-image-tag-mutability", "--image-tag-mutability", "IMMUTABLE")
    if mutability == "IMMUTABLE":
        return []
    patterns = ", ".join(repr(pattern) for pattern in repository.mutability_exclusions)
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        if any(_matches_every_tag(pattern) for pattern in repository.mutability_exclusions):
            return [
                context.finding(
                    Check.TAG_IMMUTABILITY,
                    Severity.MEDIUM,
                    f"tags are immutable except those matching {patterns}, which match every "
                    "tag: any tag can be pushed over",
                    fix,
                )
            ]
        return [
            context.finding(
                Check.TAG_IMMUTABILITY,
                Severity.LOW,
                f"tags matching {patterns} stay mutable: a pod that pulls one of them by tag can "
                "run a different image after a push; pull those by digest, or drop the exclusion",
                fix,
                advisory=True,
            )
        ]
    if mutability == "MUTABLE_WITH_EXCLUSION":
        detail = f"mutable except those matching {patterns}"
    elif mutability == "MUTABLE":
        detail = "MUTABLE"
    else:
        detail = f"{mutability!r}, not IMMUTABLE"
    return [
        context.finding(
            Check.TAG_IMMUTABILITY,
            Severity.MEDIUM,
            f"image tags are {detail}: pushing an existing tag again replaces the image that "
            "pods pulling the tag run",
            fix,
        )
    ]


def check_scan_on_push(context: _Context) -> list[PostureFinding]:
    """Every pushed image should be scanned without anyone asking."""
    repository = context.repository
    enhanced = context.scanning.scan_type == "ENHANCED"
    # Under enhanced scanning (Amazon Inspector) the registry's rules alone decide: a
    # repository's own scanOnPush is the basic-scanning setting, and ECR ignores it then.
    if context.scanning.rule_covering(repository.name) or (
        repository.scan_on_push and not enhanced
    ):
        return []
    if enhanced:
        fix = (
            "add a rule for the repository to the registry's enhanced scanning (this call "
            "replaces every rule: include the existing ones): aws ecr "
            "put-registry-scanning-configuration --scan-type ENHANCED --rules "
            + shlex.quote(_scanning_rules(context.scanning, repository.name))
            + f" --region {shlex.quote(repository.region)}"
        )
        where = (
            "no rule of the registry's ENHANCED scanning covers it "
            "(the repository's own setting does not count then)"
        )
    else:
        fix = context.cli(
            "put-image-scanning-configuration",
            "--image-scanning-configuration",
            "scanOnPush=true",
        )
        where = "no registry-level scan-on-push rule covers it"
    return [
        context.finding(
            Check.SCAN_ON_PUSH,
            Severity.MEDIUM,
            f"pushed images are not scanned: scanOnPush is off and {where}",
            fix,
        )
    ]


def check_encryption(context: _Context) -> list[PostureFinding]:
    """AES256 works; a customer-managed KMS key adds key policy control and CloudTrail records."""
    repository = context.repository
    if repository.encryption_type in KMS_TYPES:
        return []
    return [
        context.finding(
            Check.ENCRYPTION,
            Severity.LOW,
            f"images are encrypted with {repository.encryption_type or 'AES256'} (ECR-managed "
            "keys); a KMS key lets a key policy decide who can decrypt, and logs each use",
            "encryption is fixed when a repository is created: create a new one with "
            + context.cli(
                "create-repository",
                "--encryption-configuration",
                "encryptionType=KMS,kmsKey=<key-arn>",
            )
            + " (console: Create repository → Encryption settings → AWS KMS), then move the "
            "images and the pods that pull them",
            advisory=True,
        )
    ]


def check_lifecycle_policy(context: _Context) -> list[PostureFinding]:
    """Old images pile up, and old images carry old vulnerabilities."""
    if _lifecycle_rules(context.repository.lifecycle_policy):
        return []
    return [
        context.finding(
            Check.LIFECYCLE_POLICY,
            Severity.LOW,
            "no lifecycle policy: images are never expired, so old vulnerable images stay "
            "pullable and storage grows",
            context.cli(
                "put-lifecycle-policy", "--lifecycle-policy-text", EXAMPLE_LIFECYCLE_POLICY
            ),
            advisory=True,
        )
    ]


def check_repository_policy(context: _Context) -> list[PostureFinding]:
    """Pulls should be granted to known accounts or a fenced-off audience, never to everyone."""
    repository = context.repository
    text = repository.repository_policy
    if not text:
        return []
    statements = _statements(text)
    fix_policy = context.cli("set-repository-policy", "--policy-text", "file://policy.json")
    if statements is None:
        return [
            context.finding(
                Check.REPOSITORY_POLICY,
                Severity.MEDIUM,
                "the repository policy is not a JSON policy document mamori can read",
                f"review it with {context.cli('get-repository-policy')} and set a valid one "
                f"with {fix_policy}",
            )
        ]
    findings: list[PostureFinding] = []
    fenced = any(_fences_everyone(statement) for statement in statements)
    public = [
        _statement_name(statement, index)
        for index, statement in enumerate(statements)
        if _allows_pull(statement)
        and _grants_everyone(statement)
        and not fenced
        and not _restricts(statement.get("Condition"), MATCHING_OPERATORS, allow_if_exists=False)
    ]
    if public:
        findings.append(
            context.finding(
                Check.REPOSITORY_POLICY,
                Severity.HIGH,
                f"{_join(public)} allow{'s' if len(public) == 1 else ''} anyone to pull images "
                '(Principal "*" without a Condition on aws:PrincipalOrgID, '
                "aws:SourceAccount or aws:PrincipalAccount)",
                'add a Condition such as {"StringEquals": {"aws:PrincipalOrgID": "o-…"}} to '
                f"{_join(public)}, or remove {'it' if len(public) == 1 else 'them'}, "
                f"then {fix_policy}",
            )
        )
    known = {repository.registry_id, *context.settings.known_accounts}
    unknown: dict[str, list[str]] = {}
    for index, statement in enumerate(statements):
        if not _allows_pull(statement):
            continue
        for account in sorted(_accounts(statement) - known):
            unknown.setdefault(account, []).append(_statement_name(statement, index))
    if unknown:
        grants = "; ".join(f"{account} by {_join(names)}" for account, names in unknown.items())
        findings.append(
            context.finding(
                Check.REPOSITORY_POLICY,
                Severity.MEDIUM,
                f"pulls are granted to accounts that are not known: {grants}",
                "remove the accounts from the policy and "
                f"{fix_policy}; or, if they are yours, pass "
                + " ".join(f"--known-account {account}" for account in unknown),
            )
        )
    return findings


CHECKS: tuple[Callable[[_Context], list[PostureFinding]], ...] = (
    check_tag_immutability,
    check_scan_on_push,
    check_encryption,
    check_lifecycle_policy,
    check_repository_policy,
)


def filter_matches(pattern: str, repository: str) -> bool:
    """ECR's WILDCARD repository filter: ``*`` is any run of characters; no ``*``: a substring."""
    if "*" not in pattern:
        return pattern in repository
    expression = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    return re.fullmatch(expression, repository) is not None


def _matches_every_tag(pattern: str) -> bool:
    return bool(pattern) and not pattern.strip("*")


def _scanning_rules(scanning: RegistryScanning, repository: str) -> str:
    rules = [
        {
            "scanFrequency": rule.frequency,
            "repositoryFilters": [{"filter": f, "filterType": "WILDCARD"} for f in rule.filters],
        }
        for rule in scanning.rules
    ]
    rules.append(
        {
            "scanFrequency": "CONTINUOUS_SCAN",
            "repositoryFilters": [{"filter": repository, "filterType": "WILDCARD"}],
        }
    )
    return json.dumps(rules, separators=(",", ":"))


def _lifecycle_rules(text: str | None) -> list[Any]:
    if not text:
        return []
    try:
        document = json.loads(text)
    except ValueError:
        return []
    rules = document.get("rules") if isinstance(document, dict) else None
    return rules if isinstance(rules, list) else []


def _statements(text: str) -> list[Mapping[str, Any]] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return None
    return [statement for statement in statements if isinstance(statement, dict)]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _action_matches(pattern: str, action: str) -> bool:
    expression = ".*".join(
        ".".join(re.escape(part) for part in piece.split("?")) for piece in pattern.split("*")
    )
    return re.fullmatch(expression, action, flags=re.IGNORECASE) is not None


def _grants_pull(statement: Mapping[str, Any]) -> bool:
    if "Action" in statement:
        patterns = _strings(statement["Action"])
        return any(_action_matches(p, action) for p in patterns for action in PULL_ACTIONS)
    if "NotAction" in statement:  # everything except the listed actions
        excluded = _strings(statement["NotAction"])
        return any(not any(_action_matches(p, action) for p in excluded) for action in PULL_ACTIONS)
    return False


def _allows_pull(statement: Mapping[str, Any]) -> bool:
    return statement.get("Effect") == "Allow" and _grants_pull(statement)


def _grants_everyone(statement: Mapping[str, Any]) -> bool:
    if "NotPrincipal" in statement:  # an Allow to everyone but the listed principals
        return True
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in value for value in _strings(principal.get("AWS")))
    return False


def _accounts(statement: Mapping[str, Any]) -> set[str]:
    principal = statement.get("Principal")
    values = _strings(principal.get("AWS")) if isinstance(principal, dict) else []
    accounts = set()
    for value in values:
        if ACCOUNT_ID.match(value):
            accounts.add(value)
        elif match := ACCOUNT_ARN.match(value):
            accounts.add(match.group(1))
    return accounts


def _fences_everyone(statement: Mapping[str, Any]) -> bool:
    """A Deny of pulls to everyone outside an organization, accounts or network (or to all)."""
    if statement.get("Effect") != "Deny" or not _grants_pull(statement):
        return False
    if not _grants_everyone(statement):
        return False
    condition = statement.get("Condition")
    if not condition:
        return True
    return _restricts(condition, NEGATED_OPERATORS, allow_if_exists=True)


def _restricts(condition: object, operators: Iterable[str], *, allow_if_exists: bool) -> bool:
    """Whether a Condition block narrows the audience with one of ``operators``.

    For an Allow, ``…IfExists`` lets requests without the key through, so it does not count; a
    value of only wildcards narrows nothing. ``ForAllValues:`` passes when the key is missing.
    """
    if not isinstance(condition, dict):
        return False
    wanted = frozenset(operators)
    for operator, block in condition.items():
        name = str(operator).lower()
        if name.startswith("forallvalues:") or not isinstance(block, dict):
            continue
        name = name.removeprefix("foranyvalue:")
        if name.endswith("ifexists"):
            if not allow_if_exists:
                continue
            name = name.removesuffix("ifexists")
        if name not in wanted:
            continue
        for key, values in block.items():
            if str(key).lower() in RESTRICTING_KEYS and any(
                value.strip("*?") for value in _strings(values)
            ):
                return True
    return False


def _statement_name(statement: Mapping[str, Any], index: int) -> str:
    sid = statement.get("Sid")
    return f"statement {sid!r}" if isinstance(sid, str) and sid else f"statement #{index + 1}"


def _join(names: Sequence[str]) -> str:
    return ", ".join(names)
