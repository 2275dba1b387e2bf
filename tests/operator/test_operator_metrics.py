"""The operator's metrics (mamori_operator/metrics.py): series that exist before the first
event, and the scan-status gauge read from the state at scrape time."""

from __future__ import annotations

import datetime

import pytest

from mamori_operator.metrics import (
    EVENT_OUTCOMES,
    POLICY_REPORT_OUTCOMES,
    RECONCILE_KINDS,
    Metrics,
)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        *(
            pytest.param(
                "mamori_operator_reconciles_total",
                {"kind": kind, "outcome": outcome},
                id=f"reconciles-{kind}-{outcome}",
            )
            for kind in RECONCILE_KINDS
            for outcome in ("success", "failure")
        ),
        *(
            pytest.param("mamori_operator_event_posts_total", {"outcome": o}, id=f"events-{o}")
            for o in EVENT_OUTCOMES
        ),
        *(
            pytest.param(
                "mamori_operator_policy_report_writes_total", {"outcome": o}, id=f"reports-{o}"
            )
            for o in POLICY_REPORT_OUTCOMES
        ),
    ],
)
def test_known_series_start_at_zero_so_the_first_failure_is_a_rate(
    name: str, labels: dict[str, str]
) -> None:
    assert sample(Metrics(), name, **labels) == 0


@pytest.mark.parametrize(("failed", "outcome"), [(True, "failure"), (False, "success")])
def test_a_reconcile_counts_under_its_kind_and_outcome(failed: bool, outcome: str) -> None:
    metrics = Metrics()
    metrics.count_reconcile("network-policies", failed=failed)
    metrics.count_reconcile("network-policies", failed=failed)
    labels = {"kind": "network-policies", "outcome": outcome}
    assert sample(metrics, "mamori_operator_reconciles_total", **labels) == 2
    other = "success" if failed else "failure"
    assert sample(metrics, "mamori_operator_reconciles_total", kind="network-policies",
                  outcome=other) == 0  # fmt: skip


def test_certificate_expiry_is_a_unix_time_per_certificate() -> None:
    metrics = Metrics()
    not_after = datetime.datetime(2027, 3, 1, 12, 0, tzinfo=datetime.UTC)
    metrics.certificate_expires("serving", not_after)
    value = sample(metrics, "mamori_operator_certificate_expiry_timestamp_seconds",
                   certificate="serving")  # fmt: skip
    assert value == not_after.timestamp()
    assert sample(metrics, "mamori_operator_certificate_expiry_timestamp_seconds",
                  certificate="ca") is None  # fmt: skip


def test_pods_by_scan_status_are_read_when_scraped_and_absent_on_a_standby() -> None:
    metrics = Metrics()
    name = "mamori_operator_pods_by_scan_status"
    assert sample(metrics, name, status="vulnerable") is None  # a standby: no state, no samples
    counts = {"clean": 3, "vulnerable": 1}
    metrics.show_scan_statuses(lambda: counts)
    assert sample(metrics, name, status="vulnerable") == 1
    counts["vulnerable"] = 0  # the pod was fixed: the next scrape says so, no update needed
    assert sample(metrics, name, status="vulnerable") == 0
    assert sample(metrics, name, status="clean") == 3
