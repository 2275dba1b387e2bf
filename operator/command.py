"""``mamori operator``: flags and MAMORI_* environment → :class:`OperatorConfig` → kopf."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import kopf

from mamori.operator.certificates import CertificateSettings
from mamori.operator.config import OperatorConfig
from mamori.settings import SettingsError, load_settings
from mamori.settings import add_arguments as add_settings_arguments

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
    configure_logging(config)
    from mamori.operator.metrics import Metrics
    from mamori.operator.runtime import run_operator

    memo = kopf.Memo(metrics=Metrics(), certificates=certificates)
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, registry=memo.metrics.registry)
    if config.health_port:
        from mamori.operator.health import HealthServer, Liveness

        memo.liveness = Liveness(stall_after=max(120.0, 10 * config.status_interval))
        HealthServer(config.health_port, memo.liveness).start()
    return run_operator(config, memo=memo)


def configure_logging(config: OperatorConfig) -> None:
    log_format = kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(debug=config.verbose, verbose=config.verbose, log_format=log_format)
    if not config.verbose:
        # kopf.objects logs every handled event at INFO: thousands of lines per pod churn.
        for noisy in ("kopf.objects", "botocore", "boto3", "urllib3", "kubernetes"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
