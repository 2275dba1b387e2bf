"""``mamori webhook``: flags and MAMORI_* environment → :class:`WebhookSettings` → the server.

Everything that can be wrong with the configuration is found here, before a worker starts: the
settings, the certificate pair, the policy file or the way to reach the cluster. Each failure is
one line on stderr that says what to set, and exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mamori.kubeconfig import load_client_configuration
from mamori.logs import configure_logging
from mamori.settings import SettingsError, load_settings
from mamori.settings import add_arguments as add_settings_arguments
from mamori_webhook.settings import WebhookSettings

if TYPE_CHECKING:
    from mamori_webhook.event_sink import EventSink
    from mamori_webhook.policy_source import PolicySource

LOG = logging.getLogger("mamori_webhook.command")
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve the admission webhook (POST /validate, GET /healthz, /readyz, /metrics) over "
        "TLS. With --policy it enforces that file; without, the ClusterSecurityPolicies in the "
        "cluster. Every flag can also be set as MAMORI_<FLAG>."
    )
    add_settings_arguments(parser, WebhookSettings)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(WebhookSettings, args, os.environ)
    except SettingsError as error:
        return usage_error(str(error))
    configure_logging(log_format=settings.log_format, verbose=settings.verbose)
    from mamori_webhook.server import serve
    from mamori_webhook.tls import CertificateError, CertificateReloader

    certificates = CertificateReloader(settings.tls_cert, settings.tls_key)
    try:
        certificates.load()
        factory = policy_source_factory(settings, os.environ)
        check_registry_access(settings)
    except CertificateError as error:
        return usage_error(f"--tls-cert/--tls-key: {error}")
    except StartupError as error:
        return usage_error(str(error))
    return serve(
        settings,
        certificates=certificates,
        policy_source_factory=factory,
        event_sink_factory=event_sink_factory(settings, os.environ),
    )


class StartupError(Exception):
    """A configuration that cannot serve; the message says what to set."""


def policy_source_factory(
    settings: WebhookSettings, environ: Mapping[str, str]
) -> Callable[[], PolicySource]:
    """Check the policy source now; return how each worker builds its own."""
    from mamori.policy import PolicyError
    from mamori_webhook.policy_source import ClusterPolicySource, StaticPolicySource

    if settings.policy is not None:
        try:
            static = StaticPolicySource.from_file(settings.policy)
        except (PolicyError, OSError) as error:
            raise StartupError(f"--policy {settings.policy}: {error}") from None
        return functools.partial(_same, static)
    try:
        configuration = load_client_configuration(settings.kubeconfig, environ)
    except Exception as error:
        raise StartupError(
            "no policy source: pass --policy FILE, run in a cluster (service account), "
            f"or set --kubeconfig (MAMORI_KUBECONFIG) or KUBECONFIG ({error})"
        ) from None

    def cluster_source() -> ClusterPolicySource:
        import kubernetes.client

        return ClusterPolicySource(kubernetes.client.ApiClient(configuration))

    return cluster_source


def check_registry_access(settings: WebhookSettings) -> None:
    """Build the registry access once now, so a bad CA or credentials file stops the start."""
    from mamori.supplychain.credentials import CredentialsError
    from mamori_webhook.registry_access import build_registry_access

    try:
        build_registry_access(settings)
    except (OSError, ssl.SSLError, CredentialsError) as error:
        detail = error if isinstance(error, CredentialsError) else type(error).__name__
        raise StartupError(f"registry access cannot be set up: {detail}") from None


def event_sink_factory(
    settings: WebhookSettings, environ: Mapping[str, str]
) -> Callable[[], EventSink] | None:
    """How each worker builds its Event sink: the policy watch's way to the API server.

    None when ``--no-events``, or when a ``--policy`` file is served and no cluster is configured
    (a local run): then Events are off, and the log says so once.
    """
    if not settings.events:
        return None
    try:
        configuration = load_client_configuration(settings.kubeconfig, environ)
    except Exception as error:
        LOG.warning("Kubernetes Events are off: no cluster to post them to (%s)", error)
        return None
    instance = socket.gethostname()  # the pod's name, in a cluster

    def build() -> EventSink:
        import kubernetes.client

        from mamori.events import EventCorrelator, Limits, Reporter
        from mamori_webhook.event_sink import (
            COALESCE_SECONDS,
            COMPONENT,
            EventSink,
            KubeEventWriter,
        )

        return EventSink(
            correlator=EventCorrelator(
                Reporter(COMPONENT, instance), limits=Limits(coalesce_seconds=COALESCE_SECONDS)
            ),
            writer=KubeEventWriter(kubernetes.client.ApiClient(configuration)),
        )

    return build


def _same(source: PolicySource) -> PolicySource:
    return source


def usage_error(message: str) -> int:
    print(f"mamori webhook: error: {message}", file=sys.stderr)
    return EXIT_USAGE
