"""The ``mamori`` command: one entry point, one subcommand per front door.

Subcommands import their heavy dependencies (Flask, kopf) only when chosen, so ``mamori check``
in CI starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mamori import __version__
from mamori.check import EXIT_ERROR, run_check, write_json, write_text
from mamori.policy import PolicyError, default_policy, load_policy_file

# Subcommands implemented in their own packages: name → (module, help).
DELEGATED = {
    "webhook": ("mamori.webhook.command", "serve the admission webhook over TLS"),
    "operator": ("mamori.operator.command", "run the operator (NetworkPolicies, scans, status)"),
    "controlplane": (
        "mamori.controlplane",
        "run a local etcd + kube-apiserver for trying mamori (development)",
    ),
}


class UsageError(Exception):
    """A command line that cannot run; exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; only the chosen delegated subcommand's module is imported."""
    parser = ArgumentParser(prog="mamori", description="Container-security guardrails.")
    parser.add_argument("--version", action="version", version=f"mamori {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="check manifests against the admission rules (for CI)",
        description="Exit 0: all workloads allowed; 1: some denied; 2: usage or input error.",
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, or - for stdin")
    check.add_argument("--policy", metavar="FILE", help="ClusterSecurityPolicy YAML file")
    check.add_argument("--output", choices=("text", "json"), default="text")
    check.add_argument(
        "--namespace", default="default", help="namespace for manifests that name none"
    )
    for name, (module, text) in DELEGATED.items():
        sub = commands.add_parser(name, help=text)
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


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in arguments if not a.startswith("-")), None)
    parser = build_parser(command)
    try:
        args = parser.parse_args(arguments)
    except UsageError as error:
        print(f"mamori: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    if getattr(args, "delegate", None):
        module = importlib.import_module(args.delegate)
        return int(module.run(args))
    return command_check(args)


def command_check(args: argparse.Namespace) -> int:
    try:
        policies = load_policy_file(args.policy) if args.policy else [default_policy()]
    except (PolicyError, OSError) as error:
        print(f"mamori: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    report = run_check(args.paths, policies, default_namespace=args.namespace)
    for problem in report.errors:
        print(f"mamori: error: {problem.render()}", file=sys.stderr)
    if args.output == "json":
        write_json(report, sys.stdout)
    else:
        write_text(report, sys.stdout)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
