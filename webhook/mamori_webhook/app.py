"""The webhook's Flask application: built by :func:`create_app`, nothing configured at import.

HTTP concerns only: body size and content type, status codes, health and metrics endpoints. The
verdict itself comes from :class:`mamori_webhook.admission.Admission`. Every failure has an
answer: a body that is not a usable AdmissionReview gets HTTP 400 with ``{"error": reason}``
(oversized ones too, so the API server logs the reason rather than a bare 413), a missing policy
set gets 503 (the API server then applies the webhook's failurePolicy), and an unexpected error
inside the rules gets a fail-closed review answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from mamori_webhook.admission import Admission, NotReady
from mamori_webhook.event_sink import EventSink
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import PolicySource
from mamori_webhook.review import BadReview, shorten
from mamori_webhook.settings import WebhookSettings

LOG = logging.getLogger("mamori_webhook.app")
JSON_TYPE = "application/json"
DRAIN_FACTOR = 4  # refused bodies up to this many times the limit are read to the end
LOG_REASON_MAX_CHARS = 200


class CertificateStatus(Protocol):
    """What readiness needs to know about the served certificate."""

    @property
    def ready(self) -> bool: ...


def create_app(
    settings: WebhookSettings,
    *,
    policy_source: PolicySource,
    metrics: AdmissionMetrics,
    certificates: CertificateStatus | None = None,
    events: EventSink | None = None,
) -> Flask:
    """Build the app; the caller owns ``policy_source`` and ``events`` (starts and stops them)."""
    if events is not None:
        events.count_outcomes(lambda outcome: metrics.event_posts.labels(outcome=outcome).inc())
    app = Flask("mamori_webhook")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    admission = Admission(
        policy_source=policy_source,
        metrics=metrics,
        trusted_annotation_writers=settings.trusted_annotation_writers,
        on_answer=None if events is None else events.report,
    )
    app.register_blueprint(
        admission_blueprint(admission, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    )
    app.register_blueprint(
        health_blueprint(policy_source=policy_source, certificates=certificates, metrics=metrics)
    )
    register_error_handlers(app, metrics)
    return app


def json_response(payload: Any, status: int = 200) -> Response:
    """Compact UTF-8 JSON: the bytes of a compact ``json.dumps``, several times faster."""
    return Response(orjson.dumps(payload), status=status, mimetype=JSON_TYPE)


def error_response(
    metrics: AdmissionMetrics, reason: str, message: str, status: int = 400
) -> Response:
    metrics.errors.labels(reason=reason).inc()
    return json_response({"error": message}, status)


def admission_blueprint(
    admission: Admission, *, metrics: AdmissionMetrics, max_body_bytes: int
) -> Blueprint:
    blueprint = Blueprint("admission", __name__)

    @blueprint.post("/validate")
    def validate() -> Response:
        if request.mimetype != JSON_TYPE:
            return error_response(
                metrics,
                "content-type",
                f"Content-Type must be {JSON_TYPE}, got {request.mimetype or 'nothing'!r}",
            )
        body = read_body(max_body_bytes)
        if body is None:
            response = error_response(
                metrics,
                "body-too-large",
                f"request body is larger than {max_body_bytes} bytes (--max-body-bytes)",
            )
            if not discard_body(DRAIN_FACTOR * max_body_bytes):
                response.headers["Connection"] = "close"
            return response
        try:
            verdict = admission.review(body)
        except BadReview as error:
            # One short line, never a traceback: anyone who can reach the Service can send these.
            LOG.warning(
                "refused a malformed AdmissionReview from %s: %s",
                request.remote_addr or "-",
                shorten(error.reason, LOG_REASON_MAX_CHARS),
            )
            return error_response(metrics, "malformed-review", error.reason)
        except NotReady as error:
            return error_response(metrics, "not-ready", str(error), status=503)
        return json_response(verdict.response)

    return blueprint


def read_body(limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` (declared or actual)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    body = request.stream.read(limit + 1)
    return None if len(body) > limit else body


def discard_body(limit: int) -> bool:
    """Read and drop what is left of a refused body, so a client still sending gets the 400.

    Returns False when more than ``limit`` bytes remain: then the connection is closed instead.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        return False
    remaining = limit
    while remaining > 0:
        chunk = request.stream.read(min(64 * 1024, remaining))
        if not chunk:
            return True
        remaining -= len(chunk)
    return not request.stream.read(1)


def health_blueprint(
    *,
    policy_source: PolicySource,
    certificates: CertificateStatus | None,
    metrics: AdmissionMetrics,
) -> Blueprint:
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @blueprint.get("/readyz")
    def readyz() -> Response:
        problems = []
        if policy_source.current() is None:
            problems.append("policies are not loaded yet")
        if certificates is not None and not certificates.ready:
            problems.append("no valid TLS certificate is loaded")
        if problems:
            return json_response({"status": "not ready", "problems": problems}, 503)
        return json_response({"status": "ready"})

    @blueprint.get("/metrics")
    def metrics_endpoint() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    return blueprint


def register_error_handlers(app: Flask, metrics: AdmissionMetrics) -> None:
    """JSON for every error; an unexpected exception is logged and answered, never raised."""

    def http_error(error: HTTPException) -> Response:
        return json_response({"error": error.description or error.name}, error.code or 400)

    def unexpected(error: Exception) -> Response:
        LOG.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(metrics, "unexpected", f"unexpected error: {type(error).__name__}")

    handlers: dict[type[Exception], Callable[[Any], Response]] = {
        HTTPException: http_error,
        Exception: unexpected,
    }
    for error_type, handler in handlers.items():
        app.register_error_handler(error_type, handler)
