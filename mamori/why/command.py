"""``kubectl mamori why OBJECT`` (the ``kubectl-mamori`` executable) and ``mamori why OBJECT``.

kubectl runs any executable named ``kubectl-mamori`` on PATH for ``kubectl mamori``, passing
the rest of the command line, so the flags are kubectl's own: ``-n``, ``--context``,
``--kubeconfig``, ``-o``, ``--request-timeout``. Exit status: 0 allowed, 1 denied (the webhook
would refuse the object now), 2 error (not found, no access, bad arguments).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from mamori.durations import parse_duration
from mamori.policy.shape import NAMESPACE_NAME_PATTERN
from mamori.why.cluster import ClusterError, ClusterOptions, connect
from mamori.why.gather import gather
from mamori.why.render import write_json, write_text
from mamori.why.target import TargetError, parse_target

EXIT_ERROR = 2
NAMESPACE_NAME = re.compile(NAMESPACE_NAME_PATTERN)
DESCRIPTION = (
    "Explain which ClusterSecurityPolicies judge a pod or workload in the cluster, which do "
    "not and why, and every violation with its fix. OBJECT: NAME (a pod, else a deployment), "
    "KIND/NAME or KIND NAME (pod, deploy, sts, ds, rs, job, cj, rc). "
    "Exit status: 0 allowed, 1 denied, 2 error."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("object", nargs="+", metavar="OBJECT", help="NAME, KIND/NAME or KIND NAME")
    parser.add_argument("-n", "--namespace", help="the object's namespace (default: the context's)")
    parser.add_argument("--context", help="the kubeconfig context to use")
    parser.add_argument("--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument(
        "--request-timeout",
        default="10s",
        metavar="DURATION",
        help="how long to wait for each answer of the API server (10s, 1m; default 10s)",
    )


def run(args: argparse.Namespace) -> int:
    """Explain the object named by ``args``; the exit status says allowed, denied or error."""
    try:
        target = parse_target(list(args.object))
        timeout = _seconds(args.request_timeout)
        if args.namespace is not None and not NAMESPACE_NAME.match(args.namespace):
            raise TargetError(f"-n: {args.namespace!r} is not a namespace name")
        cluster = connect(ClusterOptions(args.kubeconfig, args.context, timeout))
        namespace = args.namespace or cluster.default_namespace
        explanation = gather(cluster, target, namespace)
    except (TargetError, ClusterError) as error:
        print(f"mamori why: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    (write_json if args.output == "json" else write_text)(explanation, sys.stdout)
    return explanation.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """The ``kubectl-mamori`` executable: ``why`` is its one command."""
    parser = argparse.ArgumentParser(
        prog="kubectl mamori", description="mamori's view of the objects in a cluster."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_arguments(commands.add_parser("why", help="which policies and rules judge an object"))
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        return 0 if exit_.code == 0 else EXIT_ERROR  # --help: 0; a usage error: 2, as kubectl
    return run(args)


def _seconds(text: str) -> float:
    """``10s``, ``1m`` or a number of seconds (kubectl's forms), longer than zero."""
    try:
        seconds = float(text) if text.isdigit() else parse_duration(text).total_seconds()
    except ValueError as error:
        raise TargetError(f"--request-timeout: {error}") from None
    if seconds <= 0:
        raise TargetError(f"--request-timeout: {text!r} must be longer than 0s")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
