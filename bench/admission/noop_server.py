"""The benchmark's floor: mamori's server stack (gunicorn with the front workers, TLS reloader,
Flask, the same settings) answering every review with a constant "allowed" after reading the
body and its uid.

The difference between this and ``mamori webhook`` on the same payload is what mamori's own
work costs: decoding the review, the rules, encoding the answer, metrics.

With ``--direct`` the constant answer is given by a direct route, the way the webhook's front
answers ``POST /validate`` without Flask: the floor of the path the webhook's reviews take since
2026-12-01. Without it, the floor of the Flask path every earlier figure was measured against.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from flask import Flask, Response, request

from mamori.settings import add_arguments as add_settings_arguments
from mamori.settings import load_settings
from mamori_webhook.http1 import DIRECT_ROUTES, RequestHead
from mamori_webhook.server import WebhookServer, with_fixed_port
from mamori_webhook.settings import WebhookSettings
from mamori_webhook.tls import CertificateReloader


def constant_answer(body: bytes) -> bytes:
    uid = orjson.loads(body)["request"]["uid"]  # the webhook's decoder
    answer = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True},
    }
    return orjson.dumps(answer)


def direct_noop(head: RequestHead, body: bytes, remote_addr: str) -> tuple[str, bytes]:
    return "200 OK", constant_answer(body)


class NoopServer(WebhookServer):
    direct = False

    def load(self) -> Any:
        app = Flask("noop")
        if self.direct:
            app.extensions[DIRECT_ROUTES] = {("POST", "/validate"): direct_noop}

        @app.post("/validate")
        def validate() -> Response:
            return Response(constant_answer(request.get_data()), mimetype="application/json")

        @app.get("/readyz")
        def readyz() -> Response:
            return Response('{"status":"ready"}', mimetype="application/json")

        return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--direct", action="store_true", help="answer by a direct route")
    add_settings_arguments(parser, WebhookSettings)
    arguments = parser.parse_args()
    NoopServer.direct = arguments.direct
    settings = with_fixed_port(load_settings(WebhookSettings, arguments, os.environ))
    print(f"serving on https://{settings.bind}", file=sys.stderr, flush=True)
    certificates = CertificateReloader(settings.tls_cert, settings.tls_key)
    certificates.load()
    metrics_dir = Path(tempfile.mkdtemp(prefix="mamori-noop-"))
    master = os.getpid()
    try:
        NoopServer(
            settings,
            certificates=certificates,
            policy_source_factory=lambda: None,  # type: ignore[arg-type, return-value]
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
