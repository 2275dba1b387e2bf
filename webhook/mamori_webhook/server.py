"""The production server: gunicorn as the process manager, the webhook's own front in each worker.

Why this shape (measured on the 2-core benchmark machine, see docs/benchmarks.md): one Python
process serves about a third of what two do, because the GIL serialises request threads, so the
default is two worker processes of four request threads each, and the metrics are kept in
prometheus-client's multiprocess mode so a scrape sees every worker. Each worker builds its own
app and policy source after the fork (API clients and watch threads do not survive a fork); the
certificate is loaded once in the master to fail fast, then each worker reloads it on change.

The workers are :class:`mamori_webhook.front.FrontWorker`: an event loop does the TLS handshakes
and reads each request whole, under one deadline, before a request thread sees it, so slow or
silent clients cannot hold the threads (gunicorn's gthread workers let 16 dribbling clients take
the webhook down; the "slow clients" comparison in docs/benchmarks.md chose this design).

SIGTERM is gunicorn's graceful stop: stop accepting, let in-flight requests finish within
``--graceful-timeout``, close idle keep-alive connections.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from mamori_webhook.app import create_app
from mamori_webhook.event_sink import EventSink
from mamori_webhook.front import FrontWorker
from mamori_webhook.logs import logging_config
from mamori_webhook.metrics import AdmissionMetrics, enable_multiprocess, forget_worker
from mamori_webhook.policy_source import PolicySource
from mamori_webhook.settings import WebhookSettings, parse_listen
from mamori_webhook.tls import CertificateReloader

LOG = logging.getLogger("mamori_webhook.server")
PolicySourceFactory = Callable[[], PolicySource]
EventSinkFactory = Callable[[], EventSink]
WORKER_TIMEOUT = 30  # seconds a worker may miss its heartbeat before the master replaces it


class QuietAccessLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, building access-log lines only when ``--access-log`` asks for them.

    gunicorn builds every request's access-log fields whenever a logging config is given (ours
    makes its lines JSON), whether or not anything is logged: 5% of a worker's CPU.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


class WebhookServer(BaseApplication):  # type: ignore[misc]
    """gunicorn configured from :class:`WebhookSettings` instead of its own command line."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        certificates: CertificateReloader,
        policy_source_factory: PolicySourceFactory,
        metrics_dir: Path,
        event_sink_factory: EventSinkFactory | None = None,
    ) -> None:
        self.settings = settings
        self.certificates = certificates
        self.policy_source_factory = policy_source_factory
        self.event_sink_factory = event_sink_factory
        self.metrics_dir = metrics_dir
        self.policy_source: PolicySource | None = None
        self.event_sink: EventSink | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options().items():
            self.cfg.set(key, value)

    def options(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "bind": [settings.bind],
            "worker_class": FrontWorker,
            "workers": settings.workers,
            "threads": settings.threads,  # read by FrontWorker from the settings
            "keepalive": max(1, settings.keepalive),
            "graceful_timeout": max(1, settings.graceful_timeout),
            "timeout": WORKER_TIMEOUT,
            "accesslog": "-" if settings.access_log else None,
            "logger_class": QuietAccessLogger,
            "errorlog": "-",
            "logconfig_dict": logging_config(
                log_format=settings.log_format,
                verbose=settings.verbose,
                access_log=settings.access_log,
            ),
            "proc_name": "mamori-webhook",
            "control_socket_disable": True,
            # Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new
            # connections over them. On one shared socket, the worker that accepted last is the
            # first awake for the next connection: measured, one worker often took all 16
            # keep-alive connections of a client and the other idled (a third of the throughput).
            "reuse_port": True,
            "preload_app": False,
            "worker_exit": self.worker_exit,
            "child_exit": self.child_exit,
        }

    def load(self) -> Any:
        """Build this worker's app (runs in each worker, after the fork)."""
        source = self.policy_source_factory()
        source.start()
        self.policy_source = source
        if self.event_sink_factory is not None:  # its thread, like the watches, after the fork
            self.event_sink = self.event_sink_factory()
            self.event_sink.start()
        return create_app(
            self.settings,
            policy_source=source,
            metrics=AdmissionMetrics(
                multiprocess_dir=self.metrics_dir, certificates=self.certificates
            ),
            certificates=self.certificates,
            events=self.event_sink,
        )

    def worker_exit(self, arbiter: Any, worker: Any) -> None:
        if self.policy_source is not None:
            self.policy_source.stop()
        if self.event_sink is not None:
            self.event_sink.stop()

    def child_exit(self, arbiter: Any, worker: Any) -> None:
        forget_worker(self.metrics_dir, worker.pid)


def with_fixed_port(settings: WebhookSettings) -> WebhookSettings:
    """Resolve port 0 to a free port now: every worker must bind the same one."""
    host, port = parse_listen(settings.listen)
    if port != 0:
        return settings
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    listen = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    return dataclasses.replace(settings, listen=listen)


def serve(
    settings: WebhookSettings,
    *,
    certificates: CertificateReloader,
    policy_source_factory: PolicySourceFactory,
    event_sink_factory: EventSinkFactory | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; return the exit status (in the master and in each worker)."""
    settings = with_fixed_port(settings)
    LOG.info("serving on https://%s", settings.bind)
    metrics_dir = Path(tempfile.mkdtemp(prefix="mamori-webhook-metrics-"))
    enable_multiprocess(metrics_dir)
    master = os.getpid()
    server = WebhookServer(
        settings,
        certificates=certificates,
        policy_source_factory=policy_source_factory,
        metrics_dir=metrics_dir,
        event_sink_factory=event_sink_factory,
    )
    try:
        server.run()
    except SystemExit as exit:  # gunicorn ends master and workers with sys.exit
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        if os.getpid() == master:  # workers leave through here too; only the master cleans up
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
