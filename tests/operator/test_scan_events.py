"""Scan report events hand their pods to the pod feed's work queue (handlers/scans.py).

At a cold start every ImageScan and VulnerabilityReport arrives as an event while the pod feed's
workers are refreshing the pods they listed: the handlers queue the report's pods (the queue
holds each once and never gives one to two threads) rather than refreshing them in kopf's
thread. The annotation landing through the queue is proven against the real API server in
tests/integration/test_operator_scan_queue.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any, cast

import kopf
import pytest

from mamori_operator.handlers.scans import image_scan_event, vulnerability_report_event
from mamori_operator.metrics import Metrics
from mamori_operator.state.cluster import ClusterState, Handled
from mamori_operator.state.pod_feed import PodFeed
from mamori_operator.state.pods import pod_record

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
TRIVY_LABELS = "trivy-operator.resource"


class RefusingScanner:
    """Stands in for the scanner: a handler must not refresh a pod itself."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def refresh_digests(self, digests: Iterable[str]) -> int:
        self.calls.append(("refresh_digests", list(digests)))
        return 0

    def refresh_pods(self, keys: Iterable[tuple[str, str]]) -> int:
        self.calls.append(("refresh_pods", list(keys)))
        return 0

    def refresh_pod(self, key: tuple[str, str]) -> bool:
        self.calls.append(("refresh_pod", key))
        return False


def pod(name: str, digest: str, *, owner: str = "web-6d4") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "shop",
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "5",
            "ownerReferences": [{"kind": "ReplicaSet", "name": owner, "controller": True}],
        },
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "app", "imageID": f"registry.example/app@{digest}"}],
        },
    }


def services() -> SimpleNamespace:
    """A cold start: four pods listed and queued, no worker has taken one yet."""
    state = ClusterState()
    for name, digest, owner in [
        ("web-1", DIGEST, "web-6d4"),
        ("web-2", DIGEST, "web-6d4"),
        ("api-1", DIGEST, "api-77f"),
        ("db-1", OTHER, "db-5c5"),
    ]:
        state.set_pod(pod_record(pod(name, digest, owner=owner)))
    scanner = RefusingScanner()
    feed = PodFeed(
        kube=None,  # type: ignore[arg-type]  # no list or watch runs here
        state=state,
        scanner=scanner,  # type: ignore[arg-type]
        metrics=Metrics(),
        synced=threading.Event(),
        workers=0,
        watch_timeout=1.0,
    )
    feed.look_again(sorted(state.pods))  # what the feed's own list queued
    return SimpleNamespace(
        state=state,
        handled=Handled(),
        scanner=scanner,
        pods=feed,
        config=SimpleNamespace(top_findings=20),
    )


def drained(feed: PodFeed) -> list[tuple[str, str]]:
    """Every key the workers would take, in order, each handed out once."""
    taken = []
    while (key := feed.queue.get(timeout=0)) is not None:
        taken.append(key)
        feed.queue.done(key)
    return taken


def image_scan(digest: str) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ImageScan",
        "metadata": {"name": digest.replace(":", "-"), "uid": "scan-uid"},
        "spec": {
            "digest": digest,
            "repository": "registry.example/app",
            "scanner": "ci",
            "summary": {"critical": 1},
        },
    }


def vulnerability_report() -> dict[str, Any]:
    return {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": "VulnerabilityReport",
        "metadata": {
            "name": "replicaset-web-6d4-app",
            "namespace": "shop",
            "uid": "report-uid",
            "labels": {
                f"{TRIVY_LABELS}.kind": "ReplicaSet",
                f"{TRIVY_LABELS}.name": "web-6d4",
                "trivy-operator.container.name": "app",
            },
        },
        "report": {
            "artifact": {"repository": "app", "digest": DIGEST},
            "summary": {"criticalCount": 1},
            "vulnerabilities": [],
        },
    }


@pytest.mark.parametrize(
    ("handler", "body", "event_type", "stored"),
    [
        pytest.param(image_scan_event, image_scan(DIGEST), None, True, id="imagescan-listed"),
        pytest.param(image_scan_event, image_scan(DIGEST), "ADDED", True, id="imagescan-added"),
        pytest.param(
            image_scan_event, image_scan(DIGEST), "DELETED", False, id="imagescan-deleted"
        ),
        pytest.param(
            vulnerability_report_event, vulnerability_report(), None, True, id="trivy-listed"
        ),
        pytest.param(
            vulnerability_report_event, vulnerability_report(), "DELETED", False, id="trivy-gone"
        ),
    ],
)
def test_a_report_event_queues_its_pods_once_each_and_refreshes_none_itself(
    handler: Any, body: dict[str, Any], event_type: str | None, stored: bool
) -> None:
    memo = kopf.Memo(services=services())
    state, feed = memo.services.state, memo.services.pods
    handler(
        event={"type": event_type, "object": body},
        body=kopf.Body(cast(kopf.RawBody, body)),
        memo=memo,
    )

    assert memo.services.scanner.calls == []  # nothing refreshed in kopf's thread
    # the report's pods were already waiting (listed at the cold start): still once each
    assert drained(feed) == [
        ("shop", "api-1"),
        ("shop", "db-1"),
        ("shop", "web-1"),
        ("shop", "web-2"),
    ]
    if handler is image_scan_event:
        assert (state.image_scan(DIGEST) is not None) == stored
    else:
        key = ("shop", "ReplicaSet", "web-6d4", "app")
        assert (state.vulnerability_report(key) is not None) == stored


@pytest.mark.parametrize(
    ("handler", "body", "expected"),
    [
        pytest.param(
            image_scan_event,
            image_scan(DIGEST),
            [("shop", "api-1"), ("shop", "web-1"), ("shop", "web-2")],
            id="imagescan-by-digest",
        ),
        pytest.param(
            vulnerability_report_event,
            vulnerability_report(),
            [("shop", "web-1"), ("shop", "web-2")],
            id="trivy-by-owner",
        ),
    ],
)
def test_after_the_workers_took_every_pod_a_report_queues_only_its_own(
    handler: Any, body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    memo = kopf.Memo(services=services())
    feed = memo.services.pods
    drained(feed)
    handler(
        event={"type": "MODIFIED", "object": body},
        body=kopf.Body(cast(kopf.RawBody, body)),
        memo=memo,
    )
    assert memo.services.scanner.calls == []
    assert drained(feed) == expected


@pytest.mark.parametrize(
    ("handler", "body"),
    [
        pytest.param(image_scan_event, image_scan(DIGEST), id="imagescan"),
        pytest.param(vulnerability_report_event, vulnerability_report(), id="trivy"),
    ],
)
def test_kopf_listing_what_the_prime_already_read_queues_nothing(
    handler: Any, body: dict[str, Any]
) -> None:
    """The start-up prime reads every report before kopf lists them again: kopf's listing
    event for an unchanged report has nothing new for its pods."""
    memo = kopf.Memo(services=services())
    feed = memo.services.pods
    drained(feed)
    event = {"type": None, "object": body}
    handler(event=event, body=kopf.Body(cast(kopf.RawBody, body)), memo=memo)  # the prime's read
    drained(feed)
    handler(event=event, body=kopf.Body(cast(kopf.RawBody, body)), memo=memo)  # kopf's listing
    assert drained(feed) == []
