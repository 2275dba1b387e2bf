"""Prometheus metrics of the admission webhook, in a registry owned by one app (no global state).

Under gunicorn several worker processes answer requests, so a scrape that reached one worker
would see only its share. :func:`enable_multiprocess` switches prometheus-client to its
multiprocess mode (values in memory-mapped files in one directory) before any metric exists;
:meth:`AdmissionMetrics.exposition` then sums every worker's files at scrape time. The served
certificate's expiry is read at scrape time from the worker that answers (every worker serves
the same files).

Every metric here is listed, with its labels and a query to alert on, in docs/metrics.md; the
chart's PrometheusRule and Grafana dashboard use only these names.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from mamori.supplychain.lookup import LookupReport

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

# A review waits on registries from a millisecond (a kept connection) to its whole budget (2 s).
REGISTRY_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# Images answered from kept answers are counted in the worker and written out at most once a
# second: a prometheus-client multiprocess increment costs more than the kept answer itself.
KEPT_FLUSH_SECONDS = 1.0
REGISTRY_ANSWERS = ("kept", "asked")

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


# Requests that got no verdict (see app.py and admission.py); each starts at zero.
ERROR_REASONS = (
    "content-type",
    "body-too-large",
    "malformed-review",
    "not-ready",
    "internal",
    "unexpected",
)
# Outcomes of an Event the webhook wanted to post: written as a new Event, folded into an
# existing one (count bumped), or dropped by the rate limit.
EVENT_OUTCOMES = ("posted", "aggregated", "dropped")
CERTIFICATE_EXPIRY_METRIC = "mamori_webhook_certificate_expiry_timestamp_seconds"


class Expiring(Protocol):
    @property
    def not_after(self) -> datetime.datetime: ...


class ServedCertificate(Protocol):
    """What the metrics need of :class:`mamori_webhook.tls.CertificateReloader`."""

    @property
    def current(self) -> Expiring | None: ...


class AdmissionMetrics:
    """What the webhook counts: reviews by outcome, violations by rule, time, errors.

    ``multiprocess_dir`` is set in every gunicorn worker (after :func:`enable_multiprocess` in
    the master); unit tests leave it unset and read this instance's own registry.
    ``certificates``, when given, adds the served certificate's notAfter to every scrape.
    """

    def __init__(
        self,
        *,
        multiprocess_dir: Path | None = None,
        certificates: ServedCertificate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.multiprocess_dir = multiprocess_dir
        self._clock = clock
        self.certificate_expiry = (
            CertificateExpiryCollector(certificates) if certificates is not None else None
        )
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
        self.event_posts = Counter(
            "mamori_webhook_event_posts",
            "Kubernetes Events the webhook wanted to post, by outcome (posted, aggregated, "
            "dropped)",
            ["outcome"],
            registry=self.registry,
        )
        self.registry_images = Counter(
            "mamori_webhook_registry_images",
            "Images whose registry answers a review needed (signatures, tag digests), by how "
            "they were answered: kept (from answers the worker keeps) or asked",
            ["answer"],
            registry=self.registry,
        )
        self.registry_calls = Counter(
            "mamori_webhook_registry_calls",
            "Questions reviews asked registries, failed ones included: a tag resolved, a "
            "digest's signatures read and verified (one or more requests each)",
            registry=self.registry,
        )
        self.registry_budget_exhausted = Counter(
            "mamori_webhook_registry_budget_exhausted",
            "Reviews whose registry time budget ran out before every answer was in",
            registry=self.registry,
        )
        self.registry_wait = Histogram(
            "mamori_webhook_registry_wait_seconds",
            "Time a review waited on registries, for reviews that asked one",
            buckets=REGISTRY_WAIT_BUCKETS,
            registry=self.registry,
        )
        self._registry_children = {
            answer: self.registry_images.labels(answer=answer) for answer in REGISTRY_ANSWERS
        }
        self._kept_pending = 0
        self._kept_flushed = clock()
        self._kept_lock = threading.Lock()
        # Known label values start at zero, so rate() sees the first one (in multiprocess mode
        # a series exists only once a worker has touched it).
        self._error_children = {
            reason: self.errors.labels(reason=reason) for reason in ERROR_REASONS
        }
        for outcome in EVENT_OUTCOMES:
            self.event_posts.labels(outcome=outcome)
        if self.registry is not None and self.certificate_expiry is not None:
            self.registry.register(self.certificate_expiry)
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

    def count_registry(self, report: LookupReport) -> None:
        """Count what one review's registry lookup did; kept answers are written out with
        the next review that asked, or a second after the last write."""
        now = self._clock()
        with self._kept_lock:
            self._kept_pending += report.kept
            flush = report.asked or now - self._kept_flushed >= KEPT_FLUSH_SECONDS
            kept = self._kept_pending if flush else 0
            if flush:
                self._kept_pending = 0
                self._kept_flushed = now
        if kept:
            self._registry_children["kept"].inc(kept)
        if not report.asked and not report.calls and not report.exhausted:
            return
        if report.asked:
            self._registry_children["asked"].inc(report.asked)
            self.registry_wait.observe(report.waited)
        if report.calls:
            self.registry_calls.inc(report.calls)
        if report.exhausted:
            self.registry_budget_exhausted.inc()

    def count_error(self, reason: str) -> None:
        """Count a request that got no verdict (``reason`` is one of ERROR_REASONS)."""
        child = self._error_children.get(reason)
        if child is None:
            child = self.errors.labels(reason=reason)
        child.inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text format for ``GET /metrics`` and its content type."""
        if self.multiprocess_dir is None:
            assert self.registry is not None
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        if self.certificate_expiry is not None:
            registry.register(self.certificate_expiry)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class CertificateExpiryCollector:
    """The served certificate's notAfter as a Unix time, read when scraped: after a reload the
    next scrape shows the new certificate, with no update to forget."""

    def __init__(self, certificates: ServedCertificate) -> None:
        self.certificates = certificates

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            CERTIFICATE_EXPIRY_METRIC,
            "notAfter of the TLS certificate the webhook serves, as a Unix time",
        )
        served = self.certificates.current
        if served is not None:
            family.add_metric([], served.not_after.timestamp())
        yield family


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
