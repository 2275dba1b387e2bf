"""The webhook's logs: mamori.logs' JSON fields for its own lines and gunicorn's, with context."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mamori.logs import record_context
from mamori.policy import load_policies
from mamori_webhook.app import create_app
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import StaticPolicySource
from mamori_webhook.settings import WebhookSettings
from tests.webhook.reviews import (
    TRUSTED_IMAGE,
    UNTRUSTED_IMAGE,
    pod_spec,
    policy_document,
    review,
    workload,
)
from tests.webhook.served import ROOT

CONTEXT_KEYS = ["time", "level", "logger", "message", "policy", "namespace", "name", "rule", "pid"]
PLAIN_KEYS = ["time", "level", "logger", "message", "pid"]

# What `mamori webhook` does before gunicorn starts, then what gunicorn does in each process.
SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    from mamori.logs import configure_logging, log_context
    from mamori_webhook.server import QuietAccessLogger, WebhookServer
    from mamori_webhook.settings import WebhookSettings

    settings = WebhookSettings(
        tls_cert=Path("unused.crt"), tls_key=Path("unused.key"), access_log=True
    )
    configure_logging(log_format=settings.log_format, verbose=settings.verbose)
    server = WebhookServer(
        settings, certificates=None, policy_source_factory=None, metrics_dir=Path(".")
    )
    QuietAccessLogger(server.cfg).info("gunicorn says hello")
    logging.getLogger("gunicorn.access").info("GET /healthz 200")
    logging.getLogger("mamori_webhook.admission").info(
        "denied Pod shop/web-0",
        extra=log_context(policy="prod", namespace="shop", name="web-0", rule="capabilities"),
    )
    """
)


def test_gunicorn_and_webhook_lines_are_json_with_the_same_fields() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    assert done.stdout == ""
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    by_message = {entry["message"]: entry for entry in entries}
    assert len(by_message) == len(entries) == 3, done.stderr  # each line once
    gunicorn = by_message["gunicorn says hello"]
    assert list(gunicorn) == PLAIN_KEYS
    assert gunicorn["logger"] == "gunicorn.error"
    assert list(by_message["GET /healthz 200"]) == PLAIN_KEYS
    denial = by_message["denied Pod shop/web-0"]
    assert list(denial) == CONTEXT_KEYS
    assert [denial[key] for key in CONTEXT_KEYS[4:8]] == ["prod", "shop", "web-0", "capabilities"]


def test_denial_log_names_policies_object_and_rules(caplog: pytest.LogCaptureFixture) -> None:
    trusted = TRUSTED_IMAGE.rpartition("/")[0]  # the registry and path of the trusted image
    documents: list[dict[str, Any]] = [
        policy_document("prod", trustedRegistries=[trusted]),
        policy_document("baseline", trustedRegistries=[trusted]),
    ]
    settings = WebhookSettings(tls_cert=Path("unused.crt"), tls_key=Path("unused.key"))
    app = create_app(
        settings,
        policy_source=StaticPolicySource(load_policies(documents)),
        metrics=AdmissionMetrics(),
    )
    spec = pod_spec(TRUSTED_IMAGE, UNTRUSTED_IMAGE)
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod = workload("Pod", spec=spec)
    with caplog.at_level("INFO", logger="mamori_webhook.admission"):
        response = app.test_client().post("/validate", json=review(pod, namespace="shop"))
    assert response.get_json()["response"]["allowed"] is False
    [record] = [r for r in caplog.records if r.getMessage().startswith("denied ")]
    context = record_context(record)
    assert context["policy"] == "baseline,prod"
    assert context["namespace"] == "shop"
    assert context["name"] == pod["metadata"]["name"]
    assert context["rule"] == "allow-privilege-escalation,trusted-registry"
