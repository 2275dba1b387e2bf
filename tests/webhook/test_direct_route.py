"""``POST /validate`` answered by the front's direct route is the Flask route, byte for byte.

The served webhook answers reviews without Flask (``app.extensions[DIRECT_ROUTES]``); the test
client and every request the direct route declines still go through the blueprint. Each case
sends the same request both ways, to two apps built alike, and compares the response bytes,
the metrics and the log records.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mamori.policy import load_policies
from mamori_webhook.app import create_app
from mamori_webhook.front import Front, Limits
from mamori_webhook.http1 import (
    call_app,
    direct_routes,
    json_answer,
    parse_head,
    wsgi_environ,
)
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import PolicySet, StaticPolicySource
from mamori_webhook.settings import WebhookSettings
from tests.webhook.reviews import (
    TRUSTED_IMAGE,
    UNTRUSTED_IMAGE,
    pod_spec,
    policy_document,
    review,
    workload,
)

SERVER = ("127.0.0.1", 8443)
PEER = ("10.0.0.7", 40000)
POLICY = policy_document("production", trustedRegistries=["ghcr.io/acme"])


class NotLoaded(StaticPolicySource):
    def current(self) -> PolicySet | None:
        return None


class Broken(StaticPolicySource):
    """Fails outside the rules' own fail-closed handling: the unexpected-error path."""

    def current(self) -> PolicySet | None:
        raise RuntimeError("bug")


def document_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def with_reserved_annotation() -> bytes:
    document = review(workload("Pod"))
    metadata = document["request"]["object"]["metadata"]
    metadata["annotations"] = {"mamori.io/scan-status": "clean"}
    return document_body(document)


@dataclass(frozen=True)
class Case:
    body: bytes
    content_type: str = "application/json"
    source: Callable[[], StaticPolicySource] = lambda: StaticPolicySource(load_policies([POLICY]))
    direct: bool = True  # False: the direct route declines and leaves it to Flask


CASES = {
    "allowed": Case(document_body(review(workload("Deployment")))),
    "denied": Case(document_body(review(workload("Pod", spec=pod_spec(UNTRUSTED_IMAGE))))),
    "reserved-annotation": Case(with_reserved_annotation()),
    "unjudged-delete": Case(
        document_body(review(None, operation="DELETE", old=workload("Pod"), kind="Pod"))
    ),
    "json-with-charset": Case(
        document_body(review(workload("Pod", spec=pod_spec(TRUSTED_IMAGE)))),
        content_type="APPLICATION/JSON ; charset=utf-8",
    ),
    "not-json": Case(b'{"apiVersion": "v1"'),
    "not-an-object": Case(b"[]"),
    "no-uid": Case(b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}'),
    "not-ready": Case(document_body(review(workload("Pod"))), source=lambda: NotLoaded([])),
    "unexpected-error": Case(document_body(review(workload("Pod"))), source=lambda: Broken([])),
    "wrong-content-type": Case(b"{}", content_type="text/plain", direct=False),
    "no-content-type": Case(b"{}", content_type="", direct=False),
    "json-in-a-list": Case(b"{}", content_type="application/json, text/plain", direct=False),
}


def head_for(case: Case, *, target: str = "/validate?timeout=10s") -> bytes:
    fields = [
        f"POST {target} HTTP/1.1",
        "Host: webhook.example",
        f"Content-Length: {len(case.body)}",
    ]
    if case.content_type:
        fields.append(f"Content-Type: {case.content_type}")
    return "\r\n".join(fields).encode("latin-1")


@dataclass
class Answer:
    response: bytes
    metrics: str
    logs: list[tuple[str, int, str, bool]]


def answer(case: Case, *, direct: bool, caplog: pytest.LogCaptureFixture) -> Answer:
    settings = WebhookSettings(tls_cert=Path("unused.crt"), tls_key=Path("unused.key"))
    metrics = AdmissionMetrics()
    app = create_app(settings, policy_source=case.source(), metrics=metrics)
    head = parse_head(head_for(case))
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        if direct:
            route = direct_routes(app)[("POST", "/validate")]
            declined = route(head, case.body, PEER[0])
            assert (declined is not None) == case.direct
            if declined is None:
                return Answer(b"declined", "", [])
            status, payload = declined
            response = json_answer(status, payload, keep_alive=True)
        else:
            environ = wsgi_environ(head, case.body, server=SERVER, peer=PEER)
            response, _ = call_app(app, environ, keep_alive=True)
    exposition, _ = metrics.exposition()
    text = "\n".join(
        line
        for line in exposition.decode().splitlines()
        # times differ: how long a review took, when a series was created
        if not line.startswith(
            ("mamori_admission_duration_seconds_bucket", "mamori_admission_duration_seconds_sum")
        )
        and "_created" not in line
    )
    logs = [(r.name, r.levelno, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    return Answer(response, text, logs)


@pytest.mark.parametrize("name", CASES)
def test_the_direct_route_answers_as_flask_does(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    case = CASES[name]
    by_flask = answer(case, direct=False, caplog=caplog)
    by_route = answer(case, direct=True, caplog=caplog)
    if not case.direct:
        assert by_route.response == b"declined"
        assert by_flask.response.startswith(b"HTTP/1.1 400 BAD REQUEST\r\n")
        return
    assert by_route.response == by_flask.response
    assert by_route.metrics == by_flask.metrics
    assert by_route.logs == by_flask.logs


def test_the_cases_cover_every_status_the_route_sends(caplog: pytest.LogCaptureFixture) -> None:
    statuses = {
        answer(case, direct=True, caplog=caplog).response.split(b"\r\n", 1)[0]
        for case in CASES.values()
        if case.direct
    }
    assert statuses == {
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 400 BAD REQUEST",
        b"HTTP/1.1 503 SERVICE UNAVAILABLE",
    }


def test_only_the_validate_route_is_direct() -> None:
    settings = WebhookSettings(tls_cert=Path("unused.crt"), tls_key=Path("unused.key"))
    app = create_app(
        settings,
        policy_source=StaticPolicySource(load_policies([POLICY])),
        metrics=AdmissionMetrics(),
    )
    assert set(direct_routes(app)) == {("POST", "/validate")}
    assert direct_routes(object()) == {}


@pytest.fixture
def front() -> Iterator[Front]:
    settings = WebhookSettings(tls_cert=Path("unused.crt"), tls_key=Path("unused.key"))
    app = create_app(
        settings,
        policy_source=StaticPolicySource(load_policies([POLICY])),
        metrics=AdmissionMetrics(),
    )
    loop = asyncio.new_event_loop()
    limits = Limits(client_timeout=5, keepalive=5, max_body_bytes=1 << 20, access_log=True)
    serving = Front(app=app, limits=limits, threads=1, loop=loop, routes=direct_routes(app))
    try:
        yield serving
    finally:
        serving.pool.shutdown()
        loop.close()


@pytest.mark.parametrize("name", ["allowed", "not-json", "wrong-content-type"])
def test_the_front_answers_and_logs_access_alike_either_way(
    name: str, front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    case = CASES[name]
    head = parse_head(head_for(case))
    route = front.routes[("POST", "/validate")]
    answers = []
    for direct in (True, False):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gunicorn.access"):
            if direct:
                answer = front.respond_direct(
                    route, head, case.body, server=SERVER, peer=PEER, keep_alive=False
                )
            else:
                environ = wsgi_environ(head, case.body, server=SERVER, peer=PEER)
                answer = front.respond(environ, keep_alive=False)
        access = [r.getMessage() for r in caplog.records if r.name == "gunicorn.access"]
        answers.append((answer, access))
    assert answers[0] == answers[1]
    (response, keep_alive), [line] = answers[0]
    assert keep_alive is False and b"\r\nConnection: close\r\n" in response
    assert line.startswith('10.0.0.7 "POST /validate HTTP/1.1" ')
