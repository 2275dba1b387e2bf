"""``mamori check --ecr`` end to end against moto in server mode, with IAM deciding.

Repositories are made with different settings through the real API; the command reads them back
with signed requests as a user holding exactly the permissions docs/install-eks.md lists, and
the findings and exit status are asserted. Users missing one of those permissions get a real
AccessDenied from moto. No cluster: this needs only a loopback port.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mamori.cli import main as cli_main
from mamori_operator.registry.command import add_arguments, run_ecr_check
from tests.aws_support import AccessKey, MotoServer, moto_server, use_credentials

REGION = "us-east-1"
ENHANCED_REGION = "us-west-2"  # moto keeps one registry per region: the ENHANCED one is here
OTHER_ACCOUNT = "111122223333"
PERMISSIONS = (
    "ecr:DescribeRepositories",
    "ecr:GetLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "ecr:GetRegistryScanningConfiguration",
)
LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "imageCountMoreThan",
                    "countNumber": 5,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)
PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]


def pull_policy(principal: object, condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {
        "Sid": "Pull",
        "Effect": "Allow",
        "Principal": principal,
        "Action": PULL,
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class Registry:
    moto: MotoServer
    reader: AccessKey
    missing: dict[str, AccessKey]  # a user allowed every permission but the key


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log, region=REGION) as moto:
        admin = moto.create_user("seeder", allow=["*"])
        reader = moto.create_user("posture-reader", allow=PERMISSIONS)
        missing = {
            action: moto.create_user(
                f"without-{action.split(':')[1]}", allow=[p for p in PERMISSIONS if p != action]
            )
            for action in PERMISSIONS
        }
        moto.enforce_iam()
        seed(moto.session(admin).client("ecr", endpoint_url=moto.url))
        seed_enhanced(
            moto.session(admin).client("ecr", endpoint_url=moto.url, region_name=ENHANCED_REGION)
        )
        yield Registry(moto, reader, missing)


def hardened(ecr: Any, name: str, **overrides: Any) -> None:
    """A repository with every setting right; ``overrides`` spoil some."""
    settings: dict[str, Any] = {
        "imageTagMutability": "IMMUTABLE",
        "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfiguration": {"encryptionType": "KMS"},
        **overrides,
    }
    ecr.create_repository(repositoryName=name, **settings)
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=LIFECYCLE)


def seed(ecr: Any) -> None:
    ecr.put_registry_scanning_configuration(
        scanType="BASIC",
        rules=[
            {
                "scanFrequency": "SCAN_ON_PUSH",
                "repositoryFilters": [{"filter": "ruled/*", "filterType": "WILDCARD"}],
            }
        ],
    )
    hardened(ecr, "posture/hardened")
    ecr.set_repository_policy(
        repositoryName="posture/hardened",
        policyText=pull_policy("*", {"StringEquals": {"aws:PrincipalOrgID": "o-abcdef1234"}}),
    )
    ecr.create_repository(repositoryName="posture/defaults")
    hardened(ecr, "posture/public")
    ecr.set_repository_policy(repositoryName="posture/public", policyText=pull_policy("*"))
    hardened(ecr, "posture/cross-account")
    ecr.set_repository_policy(
        repositoryName="posture/cross-account",
        policyText=pull_policy({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}),
    )
    hardened(ecr, "ruled/app", imageScanningConfiguration={"scanOnPush": False})
    hardened(
        ecr,
        "posture/exclusions",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filter": "latest", "filterType": "WILDCARD"}],
    )
    hardened(ecr, "posture/aes", encryptionConfiguration={"encryptionType": "AES256"})


def seed_enhanced(ecr: Any) -> None:
    ecr.put_registry_scanning_configuration(
        scanType="ENHANCED",
        rules=[
            {
                "scanFrequency": "CONTINUOUS_SCAN",
                "repositoryFilters": [{"filter": "covered-*", "filterType": "WILDCARD"}],
            }
        ],
    )
    hardened(ecr, "covered-app", imageScanningConfiguration={"scanOnPush": False})
    hardened(ecr, "loose/app", imageScanningConfiguration={"scanOnPush": False})


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))

    def findings(self) -> list[tuple[str, str, str, bool]]:
        return [
            (f["repository"], f["id"], f["severity"], f["advisory"])
            for f in self.report()["findings"]
        ]


@pytest.fixture
def check(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the command as the reader (or ``key``), against moto, and capture what it says."""

    def run(
        *argv: str, key: AccessKey | None = None, region: str = REGION, json_output: bool = True
    ) -> Run:
        use_credentials(monkeypatch, key or registry.reader)
        stdout, stderr = io.StringIO(), io.StringIO()
        arguments = ["--region", region, "--endpoint-url", registry.moto.url]
        arguments += ["--max-attempts", "2", *(["--output", "json"] if json_output else []), *argv]
        code = run_ecr_check(arguments, stdout=stdout, stderr=stderr)
        return Run(code, stdout.getvalue(), stderr.getvalue())

    return run


def test_a_hardened_org_restricted_repository_passes(check: Any) -> None:
    run = check("posture/hardened")
    assert (run.code, run.findings(), run.stderr) == (0, [], "")
    assert run.report()["summary"] == {"repositories": 1, "findings": 0, "advisory": 0}
    assert run.report()["region"] == REGION


def test_a_repository_left_at_the_defaults_fails(check: Any) -> None:
    run = check("posture/defaults")
    assert run.code == 1
    assert run.findings() == [
        ("posture/defaults", "ecr-tag-immutability", "MEDIUM", False),
        ("posture/defaults", "ecr-scan-on-push", "MEDIUM", False),
        ("posture/defaults", "ecr-encryption", "LOW", True),
        ("posture/defaults", "ecr-lifecycle-policy", "LOW", True),
    ]
    finding = run.report()["findings"][0]
    assert finding["arn"] == "arn:aws:ecr:us-east-1:123456789012:repository/posture/defaults"
    assert finding["region"] == REGION


def test_a_public_pull_policy_is_a_finding(check: Any) -> None:
    run = check("posture/public")
    assert run.code == 1
    assert run.findings() == [("posture/public", "ecr-repository-policy", "HIGH", False)]
    assert "statement 'Pull' allows anyone to pull" in run.report()["findings"][0]["message"]


def test_pulls_by_an_unknown_account_fail_until_it_is_known(check: Any) -> None:
    run = check("posture/cross-account")
    assert run.code == 1
    assert run.findings() == [("posture/cross-account", "ecr-repository-policy", "MEDIUM", False)]
    assert OTHER_ACCOUNT in run.report()["findings"][0]["message"]

    known = check("posture/cross-account", "--known-account", OTHER_ACCOUNT)
    assert (known.code, known.findings()) == (0, [])


def test_a_registry_scan_on_push_rule_counts_as_scanning(check: Any) -> None:
    run = check("ruled/app")
    assert (run.code, run.findings()) == (0, [])


def test_enhanced_scanning_covers_only_the_repositories_its_filters_match(check: Any) -> None:
    run = check("covered-app", "loose/app", region=ENHANCED_REGION)
    assert run.code == 1
    assert run.findings() == [("loose/app", "ecr-scan-on-push", "MEDIUM", False)]
    assert (
        "put-registry-scanning-configuration --scan-type ENHANCED"
        in (run.report()["findings"][0]["fix"])
    )


def test_advisory_findings_alone_pass(check: Any) -> None:
    run = check("posture/exclusions", "posture/aes")
    assert run.code == 0
    assert run.findings() == [
        ("posture/exclusions", "ecr-tag-immutability", "LOW", True),
        ("posture/aes", "ecr-encryption", "LOW", True),
    ]
    assert "'latest'" in run.report()["findings"][0]["message"]


def test_no_names_means_every_repository_in_the_region(check: Any) -> None:
    run = check()
    assert run.code == 1
    assert sorted(run.report()["repositories"]) == [
        "posture/aes",
        "posture/cross-account",
        "posture/defaults",
        "posture/exclusions",
        "posture/hardened",
        "posture/public",
        "ruled/app",
    ]
    failing = {repository for repository, _, _, advisory in run.findings() if not advisory}
    assert failing == {"posture/defaults", "posture/public", "posture/cross-account"}


def test_text_output_gives_each_finding_and_its_fix(check: Any) -> None:
    run = check("posture/defaults", "posture/hardened", json_output=False)
    assert run.code == 1
    lines = run.stdout.splitlines()
    assert lines[0] == (
        "[ecr-tag-immutability] posture/defaults (us-east-1) MEDIUM: image tags are MUTABLE: "
        "pushing an existing tag again replaces the image that pods pulling the tag run"
    )
    assert lines[1] == (
        "    fix: aws ecr put-image-tag-mutability --repository-name posture/defaults "
        "--region us-east-1 --image-tag-mutability IMMUTABLE"
    )
    assert lines[-1] == "2 repositories in us-east-1: 2 findings, 2 advisory"


def test_a_missing_repository_is_named(check: Any) -> None:
    run = check("posture/hardened", "posture/nope", "nope/either")
    assert (run.code, run.stdout) == (2, "")
    assert "repositories 'posture/nope', 'nope/either' not found" in run.stderr
    assert "us-east-1" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("action", PERMISSIONS)
def test_a_missing_permission_is_named(check: Any, registry: Registry, action: str) -> None:
    key = registry.missing[action]
    run = check("posture/public", key=key)
    assert (run.code, run.stdout) == (2, "")
    assert f"may not call {action}" in run.stderr and f"grant {action}" in run.stderr
    assert len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr
    assert key.id not in run.stderr and key.secret not in run.stderr


def test_unknown_credentials_are_rejected_without_being_repeated(check: Any) -> None:
    stranger = AccessKey("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    run = check("posture/hardened", key=stranger)
    assert (run.code, run.stdout) == (2, "")
    assert "AWS rejected the credentials" in run.stderr
    assert stranger.id not in run.stderr and stranger.secret not in run.stderr


def test_no_credentials_is_a_clear_error(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_credentials(monkeypatch, None)
    stderr = io.StringIO()
    code = run_ecr_check(["--region", REGION, "--endpoint-url", registry.moto.url], stderr=stderr)
    assert code == 2
    assert stderr.getvalue().startswith("mamori check --ecr: error: no AWS credentials found")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--known-account", "12345"], "--known-account '12345': expected a 12-digit account ID"),
        (["--max-attempts", "0"], "--max-attempts must be at least 1"),
        (["--output", "yaml"], "invalid choice: 'yaml'"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stderr = io.StringIO()
    assert run_ecr_check(argv, stderr=stderr) == 2
    assert message in stderr.getvalue()


def test_no_region_is_a_clear_error(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    use_credentials(monkeypatch, registry.reader)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    stderr = io.StringIO()
    assert run_ecr_check(["--endpoint-url", registry.moto.url], stderr=stderr) == 2
    assert "no AWS region: pass --region" in stderr.getvalue()


def test_a_namespace_from_another_parser_runs_the_same(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How ``mamori check --ecr`` calls it: its own parser, these flags, then the Namespace."""
    use_credentials(monkeypatch, registry.reader)
    parser = argparse.ArgumentParser(prog="mamori check --ecr")
    add_arguments(parser)
    args = parser.parse_args(
        ["--region", REGION, "--endpoint-url", registry.moto.url, "--output", "json", "ruled/app"]
    )
    stdout = io.StringIO()
    assert run_ecr_check(args, stdout=stdout) == 0
    assert json.loads(stdout.getvalue())["repositories"] == ["ruled/app"]


def test_mamori_check_dash_dash_ecr_runs_it_from_the_command_line(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real entry point: ``mamori check --ecr`` (mamori/cli.py) in front of the same check."""
    use_credentials(monkeypatch, registry.reader)
    base = ["check", "--ecr", "--region", REGION, "--endpoint-url", registry.moto.url]
    assert cli_main([*base, "--output", "json", "ruled/app"]) == 0
    assert json.loads(capsys.readouterr().out)["repositories"] == ["ruled/app"]
    assert cli_main([*base, "posture/public"]) == 1
    assert "ecr-repository-policy" in capsys.readouterr().out
    assert cli_main([*base, "--no-such-flag"]) == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
