"""One server candidate of the slow-clients comparison, serving the webhook or the no-op floor.

``python -m bench.admission.candidates CANDIDATE APP [mamori webhook flags]``

Every candidate keeps gunicorn as the process manager (2 workers, SO_REUSEPORT, the same
settings, TLS from the same certificate files) and changes only what serves a connection:

- ``gthread``: gunicorn's threaded workers, TLS and request reading on the request threads
  (the server before the front, without the per-read socket timeouts it used to set).
- ``gevent``: gunicorn's gevent workers (a greenlet per connection; gevent must be importable,
  the bench puts it on PYTHONPATH, it is not a dependency of mamori).
- ``front-asyncio`` / ``front-uvloop``: :class:`mamori_webhook.front.FrontWorker` on asyncio's
  own event loop or on uvloop's.

APP is ``webhook`` (``--policy`` required: the full rule set) or ``noop`` (the floor's constant
answer, bench/admission/noop_server.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.admission.noop_server import NoopServer
from mamori.settings import add_arguments as add_settings_arguments
from mamori.settings import load_settings
from mamori_webhook.command import policy_source_factory
from mamori_webhook.front import FrontWorker
from mamori_webhook.metrics import enable_multiprocess
from mamori_webhook.server import WebhookServer, with_fixed_port
from mamori_webhook.settings import WebhookSettings
from mamori_webhook.tls import CertificateReloader


class AsyncioFrontWorker(FrontWorker):
    loop_factory = staticmethod(asyncio.new_event_loop)


class UvloopFrontWorker(FrontWorker):
    @staticmethod
    def loop_factory() -> asyncio.AbstractEventLoop:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop


def gunicorn_tls(server: WebhookServer) -> dict[str, Any]:
    """gunicorn's own TLS: a context per connection from the reloader (as before the front)."""

    def context(config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return server.certificates.context()

    settings = server.settings
    return {"certfile": str(settings.tls_cert), "keyfile": str(settings.tls_key),
            "ssl_context": context}  # fmt: skip


def gevent_tls(server: WebhookServer) -> dict[str, Any]:
    """gevent patches ssl after the master built the reloader's contexts: let gunicorn build a
    fresh one from the files in each worker (no reload; enough for a measurement)."""
    settings = server.settings
    return {"certfile": str(settings.tls_cert), "keyfile": str(settings.tls_key)}


CANDIDATES: dict[str, Callable[[WebhookServer], dict[str, Any]]] = {
    "gthread": lambda server: {"worker_class": "gthread", **gunicorn_tls(server)},
    "gevent": lambda server: {"worker_class": "gevent", **gevent_tls(server)},
    "front-asyncio": lambda server: {"worker_class": AsyncioFrontWorker},
    "front-uvloop": lambda server: {"worker_class": UvloopFrontWorker},
}


def candidate_class(base: type[WebhookServer], name: str) -> type[WebhookServer]:
    class Candidate(base):  # type: ignore[valid-type, misc]
        def options(self) -> dict[str, Any]:
            return super().options() | CANDIDATES[name](self)  # type: ignore[no-any-return]

    return Candidate


def no_source() -> Any:
    return None  # the no-op floor judges nothing


def main() -> int:
    name, app, *flags = sys.argv[1:]
    if name not in CANDIDATES or app not in ("webhook", "noop"):
        raise SystemExit(f"usage: CANDIDATE ({', '.join(CANDIDATES)}) APP (webhook, noop) ...")
    import argparse

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, WebhookSettings)
    settings = with_fixed_port(load_settings(WebhookSettings, parser.parse_args(flags), os.environ))
    print(f"serving on https://{settings.bind}", file=sys.stderr, flush=True)
    certificates = CertificateReloader(settings.tls_cert, settings.tls_key)
    certificates.load()
    factory = policy_source_factory(settings, os.environ) if app == "webhook" else no_source
    server_class = candidate_class(NoopServer if app == "noop" else WebhookServer, name)
    metrics_dir = Path(tempfile.mkdtemp(prefix="mamori-candidate-"))
    enable_multiprocess(metrics_dir)
    master = os.getpid()
    try:
        server_class(
            settings,
            certificates=certificates,
            policy_source_factory=factory,
            metrics_dir=metrics_dir,
        ).run()
    except SystemExit as exit:
        return int(exit.code or 0)
    finally:
        if os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
