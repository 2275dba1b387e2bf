"""``mamori check --ecr``: judge ECR repositories' settings, with an exit status for CI.

Exit status as for ``mamori check``: 0 when no finding is above advisory, 1 when some is, 2 for
a usage, credential or API error (said on stderr in one line, without a traceback).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import boto3

from mamori_operator.registry.fetch import AwsSettings, FetchError, ecr_client, read_registry
from mamori_operator.registry.posture import PostureFinding, PostureSettings, judge_repository

EXIT_PASSED = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
PROG = "mamori check --ecr"
DESCRIPTION = (
    "Judge Amazon ECR repositories' settings: tag immutability, scanning on push, encryption, "
    "lifecycle policy, repository policy. Exit 0: no finding above advisory; 1: findings; "
    "2: usage, credential or API error."
)
ACCOUNT_ID = re.compile(r"^\d{12}$")


class UsageError(Exception):
    """A command line that cannot run; exit status 2."""


@dataclass(frozen=True, slots=True)
class EcrCheckSettings:
    """Everything one run needs, read once from the command line."""

    repositories: tuple[str, ...] = ()
    aws: AwsSettings = field(default_factory=AwsSettings)
    output: str = "text"
    posture: PostureSettings = field(default_factory=PostureSettings)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EcrCheckSettings:
        accounts = list(args.known_accounts or [])
        for account in accounts:
            if not ACCOUNT_ID.match(account):
                raise UsageError(f"--known-account {account!r}: expected a 12-digit account ID")
        if args.max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        return cls(
            repositories=tuple(args.repositories or ()),
            aws=AwsSettings(
                region=args.region or None,
                endpoint_url=args.endpoint_url or None,
                max_attempts=args.max_attempts,
            ),
            output=args.output,
            posture=PostureSettings(known_accounts=frozenset(accounts)),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the flags of ``mamori check --ecr`` on ``parser``."""
    parser.add_argument(
        "repositories",
        nargs="*",
        metavar="REPOSITORY",
        help="repository name (shop/web); none: every repository in the region",
    )
    parser.add_argument("--region", help="AWS region; default: AWS_REGION or the profile's")
    parser.add_argument(
        "--endpoint-url", help="ECR API endpoint override (VPC endpoint, or a local test server)"
    )
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument(
        "--known-account",
        dest="known_accounts",
        action="append",
        default=[],
        metavar="ACCOUNT_ID",
        help="account a repository policy may grant pulls to (repeatable; its own always may)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        help="attempts per AWS call, with backoff on throttling (botocore standard retries)",
    )


def build_parser() -> argparse.ArgumentParser:
    """A parser of its own, for running the check without mamori's top-level command."""
    parser = _Parser(prog=PROG, description=DESCRIPTION)
    add_arguments(parser)
    return parser


def run_ecr_check(
    arguments: argparse.Namespace | Sequence[str],
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    session: boto3.session.Session | None = None,
) -> int:
    """Parse (when given argv), read the registry, write findings; return the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        if not isinstance(arguments, argparse.Namespace):
            arguments = build_parser().parse_args(list(arguments))
        settings = EcrCheckSettings.from_args(arguments)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=err)
        return EXIT_ERROR
    try:
        snapshot = read_registry(ecr_client(settings.aws, session), settings.repositories)
    except FetchError as error:
        print(f"{PROG}: error: {error}", file=err)
        return EXIT_ERROR
    findings = [
        finding
        for repository in snapshot.repositories
        for finding in judge_repository(repository, snapshot.scanning, settings.posture)
    ]
    names = [repository.name for repository in snapshot.repositories]
    if settings.output == "json":
        write_json(findings, names, snapshot.region, out)
    else:
        write_text(findings, names, snapshot.region, out)
    return exit_code(findings)


def exit_code(findings: Sequence[PostureFinding]) -> int:
    return EXIT_FINDINGS if any(not finding.advisory for finding in findings) else EXIT_PASSED


def summary(findings: Sequence[PostureFinding], repositories: Sequence[str]) -> dict[str, int]:
    advisory = sum(1 for finding in findings if finding.advisory)
    return {
        "repositories": len(repositories),
        "findings": len(findings) - advisory,
        "advisory": advisory,
    }


def write_json(
    findings: Sequence[PostureFinding], repositories: Sequence[str], region: str, stream: TextIO
) -> None:
    report = {
        "region": region,
        "repositories": list(repositories),
        "findings": [finding.to_dict() for finding in findings],
        "summary": summary(findings, repositories),
    }
    json.dump(report, stream, indent=2)
    stream.write("\n")


def write_text(
    findings: Sequence[PostureFinding], repositories: Sequence[str], region: str, stream: TextIO
) -> None:
    for finding in findings:
        print(finding.render(), file=stream)
    counts = summary(findings, repositories)
    print(
        f"{counts['repositories']} repositories in {region}: {counts['findings']} findings, "
        f"{counts['advisory']} advisory",
        file=stream,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_ecr_check(sys.argv[1:] if argv is None else argv)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


if __name__ == "__main__":
    sys.exit(main())
