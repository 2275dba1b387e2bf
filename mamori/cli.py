"""The ``mamori`` command: one entry point, one subcommand per front door.

Subcommands import their heavy dependencies (Flask, kopf) only when chosen, so ``mamori check``
in CI starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import io
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mamori import __version__
from mamori.check import EXIT_ERROR, Writer, judge, write_json, write_text
from mamori.manifests import InputError, ReadLimits
from mamori.policy.errors import PolicyError
from mamori.policy.model import default_policy

if TYPE_CHECKING:
    from mamori.supplychain.lookup import RegistryLookup

OUTPUTS = ("text", "json", "sarif", "junit")
LOCATED_OUTPUTS = frozenset({"sarif", "junit"})
"""The reports that place each finding at its field's line (judge with ``locate``)."""


def writer_for(output: str) -> Writer:
    """The writer of one of ``OUTPUTS``; the CI formats' modules (which build on mamori.check's
    outcomes) are imported only here, when chosen."""
    if output == "sarif":
        from functools import partial

        from mamori.report.sarif import docs_url, write_sarif

        return partial(write_sarif, docs=docs_url())
    if output == "junit":
        from mamori.report.junit import write_junit

        return write_junit
    return write_json if output == "json" else write_text


# Subcommands implemented in their own packages: name → (module, help).
DELEGATED = {
    "webhook": ("mamori_webhook.command", "serve the admission webhook over TLS"),
    "operator": ("mamori_operator.command", "run the operator (NetworkPolicies, scans, status)"),
    "why": ("mamori.why.command", "which policies and rules judge an object in the cluster"),
    "controlplane": (
        "mamori_dev.controlplane",
        "run a local etcd + kube-apiserver for trying mamori (from a checkout of the repository)",
    ),
}


class UsageError(Exception):
    """A command line that cannot run; exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's own, but the terminal's width is asked for only when help or usage is written.

    argparse builds a formatter for every argument added, and the stock one asks shutil for the
    width at once: importing shutil (and the compression modules it loads) costs each
    ``mamori check`` two milliseconds for text it does not print.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, 80 if width is None else width)
        self._layout = (indent_increment, max_help_position)
        self._measured = width is not None

    def format_help(self) -> str:
        if not self._measured:  # lay out as the stock formatter would in this terminal
            stock = argparse.HelpFormatter(self._prog, *self._layout)
            self._width, self._max_help_position = stock._width, stock._max_help_position
            self._measured = True
        return super().format_help()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; only the chosen delegated subcommand's module is imported."""
    parser = ArgumentParser(
        prog="mamori", description="Container-security guardrails.", formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"mamori {__version__}")
    # prog given: argparse would lay out a usage line to find it (the same "mamori").
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", prog=parser.prog
    )
    check = commands.add_parser(
        "check",
        help="check manifests against the admission rules (for CI)",
        description="Exit 0: all workloads allowed; 1: some denied; 2: usage or input error.",
        formatter_class=HelpFormatter,
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, or - for stdin")
    check.add_argument("--policy", metavar="FILE", help="ClusterSecurityPolicy YAML file")
    check.add_argument(
        "--output",
        choices=OUTPUTS,
        default="text",
        help="text for people, json for scripts, sarif for code scanning, junit for test reports",
    )
    check.add_argument(
        "--namespace", default="default", help="namespace for manifests that name none"
    )
    check.add_argument(
        "--ecr",
        action="store_true",
        help="judge ECR repositories' settings instead of files (mamori check --ecr --help)",
    )
    from mamori.check_registry import add_arguments as add_registry_arguments

    add_registry_arguments(check)
    for name, (module, text) in DELEGATED.items():
        sub = commands.add_parser(name, help=text, formatter_class=HelpFormatter)
        sub.set_defaults(delegate=module)
        if name == command:
            _delegate_arguments(module, sub)
    return parser


def _delegate_arguments(module_name: str, parser: argparse.ArgumentParser) -> None:
    """Let the subcommand's own module declare its flags, if it is installed."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return
    add_arguments = getattr(module, "add_arguments", None)
    if callable(add_arguments):
        add_arguments(parser)


# `mamori check --ecr`: ECR repositories' settings instead of files (the operator's AWS side).
ECR_CHECK = "mamori_operator.registry.command"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "check" in arguments and "--ecr" in arguments[arguments.index("check") + 1 :]:
        return command_check_ecr(arguments)
    command = next((a for a in arguments if not a.startswith("-")), None)
    parser = build_parser(command)
    try:
        args = parser.parse_args(arguments)
    except UsageError as error:
        print(f"mamori: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    if getattr(args, "delegate", None):
        try:
            module = importlib.import_module(args.delegate)
        except ModuleNotFoundError as error:
            if error.name is None or not args.delegate.startswith(error.name):
                raise
            print(
                f"mamori: error: `mamori {command}` is not part of this installation "
                f"({args.delegate} is missing; it ships with the repository, not the image)",
                file=sys.stderr,
            )
            return EXIT_ERROR
        return int(module.run(args))
    return command_check(args)


def command_check_ecr(arguments: list[str]) -> int:
    """Judge ECR repositories (tag immutability, scanning, encryption, lifecycle, access)."""
    try:
        module = importlib.import_module(ECR_CHECK)  # by name: the core never imports the operator
    except ModuleNotFoundError as error:
        if error.name is None or not ECR_CHECK.startswith(error.name):
            raise
        print(
            "mamori: error: `mamori check --ecr` is not part of this installation", file=sys.stderr
        )
        return EXIT_ERROR
    rest = arguments[arguments.index("check") + 1 :]
    rest.remove("--ecr")
    parser = ArgumentParser(prog="mamori check --ecr", description=module.DESCRIPTION)
    module.add_arguments(parser)
    try:
        args = parser.parse_args(rest)
    except UsageError as error:
        print(f"mamori: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    return int(module.run_ecr_check(args))


def command_check(args: argparse.Namespace) -> int:
    # Names and values come from the user's files: never let one that cannot be encoded
    # (a non-UTF-8 file name, a lone surrogate) crash the report on a strict-UTF-8 stdout.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        if args.policy:
            from mamori.policy.parse import load_policy_file  # only a policy file needs the parser

            policies = load_policy_file(args.policy)
        else:
            policies = [default_policy()]
    except (PolicyError, OSError) as error:
        print(f"mamori: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    registry = None
    if args.registry_access:
        registry_or_error = _registry_lookups(args)
        if isinstance(registry_or_error, str):
            print(f"mamori: error: {registry_or_error}", file=sys.stderr)
            return EXIT_ERROR
        registry = registry_or_error
    outcomes = judge(
        args.paths,
        policies,
        default_namespace=args.namespace,
        limits=ReadLimits(),
        locate=args.output in LOCATED_OUTPUTS,
        registry=registry,
    )
    tally = writer_for(args.output)(outcomes, sys.stdout, on_error=print_input_error)
    return tally.exit_code


def _registry_lookups(args: argparse.Namespace) -> Callable[[], RegistryLookup] | str:
    """The per-object registry lookups of ``--registry-access``, or what is wrong (a line)."""
    import ssl

    from mamori.check_registry import registry_lookups
    from mamori.supplychain.credentials import CredentialsError

    try:
        lookups = registry_lookups(args)
    except (OSError, ssl.SSLError, CredentialsError, ValueError) as error:
        detail = error if isinstance(error, CredentialsError | ValueError) else type(error).__name__
        return f"--registry-access cannot be set up: {detail}"
    assert lookups is not None
    return lookups


def print_input_error(problem: InputError) -> None:
    print(f"mamori: error: {problem.render()}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
