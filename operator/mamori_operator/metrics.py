"""Prometheus metrics of one operator instance, in its own registry (no process-wide state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
