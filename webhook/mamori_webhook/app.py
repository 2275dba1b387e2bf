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
from werkzeug.http import HTTP_STATUS_CODES

from mamori_webhook.admission import Admission, NotReady
from mamori_webhook.event_sink import EventSink
from mamori_webhook.http1 import DIRECT_ROUTES, DirectAnswer, DirectRoute, RequestHead, header
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import PolicySource
from mamori_webhook.registry_access import RegistryAccess, build_registry_access
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
    registry: RegistryAccess | None = None,
) -> Flask:
    """Build the app; the caller owns ``policy_source`` and ``events`` (starts and stops them).

    ``registry``: how reviews reach registries; built from ``settings`` when not given.
    """
    if events is not None:
        events.count_outcomes(lambda outcome: metrics.event_posts.labels(outcome=outcome).inc())
    app = Flask("mamori_webhook")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    admission = Admission(
        policy_source=policy_source,
        metrics=metrics,
        trusted_annotation_writers=settings.trusted_annotation_writers,
        on_answer=None if events is None else events.report,
        registry=(registry or build_registry_access(settings)).for_request,
    )
    app.register_blueprint(
        admission_blueprint(admission, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    )
    # The server front answers the hot route without Flask; the blueprint above still answers
    # it wherever there is no front (the test client), and takes every request the direct
    # route declines (a wrong Content-Type, an oversized body).
    app.extensions[DIRECT_ROUTES] = {
        ("POST", "/validate"): direct_validate(admission, metrics=metrics)
    }
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
    return Response(error_body(metrics, reason, message), status=status, mimetype=JSON_TYPE)


def error_body(metrics: AdmissionMetrics, reason: str, message: str) -> bytes:
    """Count a request that got no verdict; its ``{"error": message}`` body."""
    metrics.count_error(reason)
    return orjson.dumps({"error": message})


def answer_review(
    admission: Admission, metrics: AdmissionMetrics, body: bytes, *, remote_addr: str
) -> tuple[int, bytes]:
    """The status and JSON body for a review body: what ``POST /validate`` answers once the
    Content-Type and size are known to be right, by Flask or by the direct route alike."""
    try:
        verdict = admission.review(body)
    except BadReview as error:
        # One short line, never a traceback: anyone who can reach the Service can send these.
        LOG.warning(
            "refused a malformed AdmissionReview from %s: %s",
            remote_addr or "-",
            shorten(error.reason, LOG_REASON_MAX_CHARS),
        )
        return 400, error_body(metrics, "malformed-review", error.reason)
    except NotReady as error:
        return 503, error_body(metrics, "not-ready", str(error))
    return 200, orjson.dumps(verdict.response)


def unexpected_body(metrics: AdmissionMetrics, error: Exception, method: str, path: str) -> bytes:
    """Log an exception no handler expected; the 400 body that answers it."""
    LOG.exception("unexpected error serving %s %s", method, path)
    return error_body(metrics, "unexpected", f"unexpected error: {type(error).__name__}")


# Werkzeug's status lines ("400 BAD REQUEST"), so both ways of answering send the same bytes.
STATUS_LINES = {code: f"{code} {HTTP_STATUS_CODES[code].upper()}" for code in (200, 400, 503)}


def direct_validate(admission: Admission, *, metrics: AdmissionMetrics) -> DirectRoute:
    """``POST /validate`` without Flask: the same answers, status lines, metrics and logs.

    It takes only what the API server sends (a JSON body within the size limit, which the
    front has already enforced) and declines the rest, which the blueprint then answers.
    """

    def validate(head: RequestHead, body: bytes, remote_addr: str) -> DirectAnswer | None:
        content_type = header(head, "content-type")
        if content_type.partition(";")[0].strip().lower() != JSON_TYPE:  # as request.mimetype
            return None
        try:
            status, payload = answer_review(admission, metrics, body, remote_addr=remote_addr)
        except Exception as error:
            status, payload = 400, unexpected_body(metrics, error, head.method, "/validate")
        return STATUS_LINES[status], payload

    return validate


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
        status, payload = answer_review(
            admission, metrics, body, remote_addr=request.remote_addr or ""
        )
        return Response(payload, status=status, mimetype=JSON_TYPE)

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
        body = unexpected_body(metrics, error, request.method, request.path)
        return Response(body, status=400, mimetype=JSON_TYPE)

    handlers: dict[type[Exception], Callable[[Any], Response]] = {
        HTTPException: http_error,
        Exception: unexpected,
    }
    for error_type, handler in handlers.items():
        app.register_error_handler(error_type, handler)
