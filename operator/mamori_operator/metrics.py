"""Prometheus metrics of one operator instance, in its own registry (no process-wide state).

Every metric here is listed, with its labels and a query to alert on, in docs/metrics.md; the
chart's PrometheusRule and Grafana dashboard use only these names (tests/chart and
tests/integration/test_metrics_exported.py hold them to it). Counters whose label values are
known in advance start at zero for each, so ``rate()`` and ``increase()`` see the first failure.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# What ``mamori_operator_reconciles_total{kind=…}`` counts: one attempt to make something in the
# cluster match what the operator wants, or to learn what it needs to.
NETWORK_POLICIES = "network-policies"  # one namespace's managed NetworkPolicies converged
SCAN_LOOKUP = "scan-lookup"  # one question to a scan provider (its answer, not the image's)
POD_SCAN_STATUS = "pod-scan-status"  # one pod's mamori.io/scan-* annotations written
IMAGE_SCAN = "image-scan"  # one ImageScan object written for a provider's result
POLICY_STATUS = "policy-status"  # one ClusterSecurityPolicy status written
CERTIFICATES = "certificates"  # one pass of the webhook's certificate keeper
RECONCILE_KINDS = (
    NETWORK_POLICIES,
    SCAN_LOOKUP,
    POD_SCAN_STATUS,
    IMAGE_SCAN,
    POLICY_STATUS,
    CERTIFICATES,
)
SUCCESS, FAILURE = "success", "failure"

# Outcomes of an Event the operator wanted to post: written as a new Event, folded into an
# existing one (count bumped), or dropped by the rate limit.
EVENT_OUTCOMES = ("posted", "aggregated", "dropped")
# Outcomes of a PolicyReport the audit wanted to write: written, left alone (no change), failed.
POLICY_REPORT_OUTCOMES = ("written", "unchanged", "failed")

SCAN_STATUS_METRIC = "mamori_operator_pods_by_scan_status"
ScanStatusCounts = Callable[[], Mapping[str, int]]


class Metrics:
    """What the operator counts; ``api_requests`` is what the benchmark divides by pod events."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.api_requests = Counter(
            "mamori_operator_api_requests",
            "Kubernetes API calls made by the operator (watches excluded)",
            ["verb", "resource"],
            registry=self.registry,
        )
        self.pod_events = Counter(
            "mamori_operator_pod_events",
            "Pod watch events handled",
            registry=self.registry,
        )
        self.provider_requests = Counter(
            "mamori_operator_scan_provider_requests",
            "Lookups sent to a scan provider (cache misses)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.repairs = Counter(
            "mamori_operator_network_policy_repairs",
            "Managed NetworkPolicies restored after someone edited or deleted them",
            registry=self.registry,
        )
        self.leader = Gauge(
            "mamori_operator_leader",
            "1 while this replica holds the leader Lease",
            registry=self.registry,
        )
        self.reconciles = Counter(
            "mamori_operator_reconciles",
            "Attempts to converge or look something up, by kind and outcome (success, failure)",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "mamori_operator_certificate_expiry_timestamp_seconds",
            "notAfter of the certificates the operator keeps for the webhook (ca, serving), "
            "as a Unix time",
            ["certificate"],
            registry=self.registry,
        )
        self.event_posts = Counter(
            "mamori_operator_event_posts",
            "Kubernetes Events the operator wanted to post, by outcome (posted, aggregated, "
            "dropped)",
            ["outcome"],
            registry=self.registry,
        )
        self.policy_report_writes = Counter(
            "mamori_operator_policy_report_writes",
            "PolicyReport writes of the background audit, by outcome (written, unchanged, failed)",
            ["outcome"],
            registry=self.registry,
        )
        for kind in RECONCILE_KINDS:
            for outcome in (SUCCESS, FAILURE):
                self.reconciles.labels(kind=kind, outcome=outcome)
        for outcome in EVENT_OUTCOMES:
            self.event_posts.labels(outcome=outcome)
        for outcome in POLICY_REPORT_OUTCOMES:
            self.policy_report_writes.labels(outcome=outcome)
        self.scan_statuses = ScanStatusCollector()
        self.registry.register(self.scan_statuses)

    def count_reconcile(self, kind: str, *, failed: bool) -> None:
        self.reconciles.labels(kind=kind, outcome=FAILURE if failed else SUCCESS).inc()

    def certificate_expires(self, certificate: str, not_after: datetime.datetime) -> None:
        self.certificate_expiry.labels(certificate=certificate).set(not_after.timestamp())

    def show_scan_statuses(self, counts: ScanStatusCounts) -> None:
        """Report pods by scan status from ``counts``, called at each scrape (the leader's
        state; a standby has none and reports no samples)."""
        self.scan_statuses.counts = counts


class ScanStatusCollector(Collector):
    """``mamori_operator_pods_by_scan_status``, read from the operator's state when scraped:
    a view of what is true now, never a tally that events could let drift."""

    def __init__(self) -> None:
        self.counts: ScanStatusCounts | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            SCAN_STATUS_METRIC,
            "Pods the operator knows, by their mamori.io/scan-status (clean, pending, unscanned, "
            "error, vulnerable)",
            labels=["status"],
        )
        counts = self.counts
        if counts is not None:
            for status, count in sorted(counts().items()):
                family.add_metric([status], count)
        yield family
