"""Prometheus metrics of the admission webhook, in a registry owned by one app (no global state).

Under gunicorn several worker processes answer requests, so a scrape that reached one worker
would see only its share. :func:`enable_multiprocess` switches prometheus-client to its
multiprocess mode (values in memory-mapped files in one directory) before any metric exists;
:meth:`AdmissionMetrics.exposition` then sums every worker's files at scrape time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Reviews take well under a millisecond; the default buckets (5 ms and up) would hide them all.
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)

# Label values come from requests; only these kinds get their own series.
KNOWN_KINDS = frozenset(
    {
        "Pod",
        "PodTemplate",
        "ReplicationController",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
    }
)


class AdmissionMetrics:
    """What the webhook counts: reviews by outcome, violations by rule, time, errors.

    ``multiprocess_dir`` is set in every gunicorn worker (after :func:`enable_multiprocess` in
    the master); unit tests leave it unset and read this instance's own registry.
    """

    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry: CollectorRegistry | None = None if multiprocess_dir else CollectorRegistry()
        self.requests = Counter(
            "mamori_admission_requests",
            "AdmissionReviews answered, by decision (allowed, denied, skipped: not judged)",
            ["decision", "kind", "operation"],
            registry=self.registry,
        )
        self.violations = Counter(
            "mamori_admission_violations",
            "Violations found in admission requests, by rule, policy and enforcement",
            ["rule", "policy", "enforcement"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "mamori_admission_duration_seconds",
            "Time to decode, judge and encode one AdmissionReview",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "mamori_admission_errors",
            "Requests that got no verdict, by reason",
            ["reason"],
            registry=self.registry,
        )
        # labels() takes a lock and builds a key on every call; a review's counters are looked
        # up once per label set instead (the label values are bounded: KNOWN_KINDS, outcomes).
        self._request_children: dict[tuple[str, str, str], Any] = {}

    def count_request(self, *, decision: str, kind: str, operation: str) -> None:
        kind = kind if kind in KNOWN_KINDS else "other"
        key = (decision, kind, operation)
        child = self._request_children.get(key)
        if child is None:
            child = self.requests.labels(decision=decision, kind=kind, operation=operation)
            self._request_children[key] = child
        child.inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text format for ``GET /metrics`` and its content type."""
        if self.multiprocess_dir is None:
            assert self.registry is not None
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def enable_multiprocess(directory: Path) -> None:
    """Put prometheus-client into multiprocess mode; call in the master, before any worker forks.

    prometheus-client chooses how it stores values when ``prometheus_client.values`` is first
    imported, from the environment. This process may have imported it already (other
    subcommands do), so the choice is made again here after the variable is set.
    """
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def forget_worker(directory: Path, pid: int) -> None:
    """Drop a dead worker's live-gauge files (counters and histograms keep their totals)."""
    mark_process_dead(pid, path=str(directory))  # type: ignore[no-untyped-call]
