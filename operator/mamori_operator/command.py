"""``mamori operator``: flags and MAMORI_* environment → :class:`OperatorConfig` → kopf."""

from __future__ import annotations

import argparse
import os
import sys

from mamori_operator.memory import import_kubernetes_client_lazily

# before kopf, which imports kubernetes.client: its ~1,100 generated modules (30 MiB) are then
# loaded one by one, as used (memory.py)
import_kubernetes_client_lazily()

import kopf  # noqa: E402

from mamori import logs  # noqa: E402
from mamori.settings import SettingsError, load_settings  # noqa: E402
from mamori.settings import add_arguments as add_settings_arguments  # noqa: E402
from mamori_operator.certificates.settings import CertificateSettings  # noqa: E402
from mamori_operator.config import OperatorConfig  # noqa: E402

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the mamori operator: managed NetworkPolicies, image-scan status on pods, "
        "ClusterSecurityPolicy status. Every flag can also be set as MAMORI_<FLAG>."
    )
    add_settings_arguments(parser, OperatorConfig)
    add_settings_arguments(parser, CertificateSettings)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_settings(OperatorConfig, args, os.environ)
        certificates = load_settings(CertificateSettings, args, os.environ)
    except SettingsError as error:
        print(f"mamori operator: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    problem = registry_access_problem(config)
    if problem is not None:
        print(f"mamori operator: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(config)
    from mamori_operator.metrics import Metrics
    from mamori_operator.runtime import run_operator

    memo = kopf.Memo(metrics=Metrics(), certificates=certificates)
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, registry=memo.metrics.registry)
    if config.health_port:
        from mamori_operator.health import HealthServer, Liveness

        memo.liveness = Liveness(stall_after=max(120.0, 10 * config.status_interval))
        HealthServer(config.health_port, memo.liveness).start()
    return run_operator(config, memo=memo)


def registry_access_problem(config: OperatorConfig) -> str | None:
    """Why the audit's registry access cannot be built (a bad CA or credentials file), checked
    once at start so that the operator does not start without it; None when it can."""
    import ssl

    from mamori.supplychain.credentials import CredentialsError
    from mamori_operator.status.registry_access import registry_asker

    try:
        registry_asker(config)
    except (OSError, ssl.SSLError, CredentialsError) as error:  # their messages hold no secret
        return f"--registry-ca-file/--registry-credentials cannot be used: {error}"
    return None


def configure_logging(config: OperatorConfig) -> None:
    """mamori's log format (:mod:`mamori.logs`) for every line, kopf's included.

    kopf.configure sets kopf's own levels (asyncio's chatter only with --verbose) and adds its
    formatter's handler to the root logger; configure_logging then replaces the root's handlers
    with ours, so each line is written once, in our fields.
    """
    kopf.configure(debug=config.verbose, verbose=config.verbose)
    # kopf.objects logs every handled event at INFO: thousands of lines per pod churn.
    logs.configure_logging(
        log_format=config.log_format,
        verbose=config.verbose,
        quiet=(*logs.QUIET_LOGGERS, "kopf.objects"),
    )
