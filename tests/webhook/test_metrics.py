"""The webhook's metrics (mamori_webhook/metrics.py): the served certificate's expiry, read at
scrape time, and error and Event series that exist before the first one."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest

from mamori.supplychain.lookup import LookupReport
from mamori_webhook.metrics import (
    ERROR_REASONS,
    EVENT_OUTCOMES,
    KEPT_FLUSH_SECONDS,
    AdmissionMetrics,
)

EXPIRY = "mamori_webhook_certificate_expiry_timestamp_seconds"


@dataclass
class Loaded:
    not_after: datetime.datetime


@dataclass
class Reloader:
    """Stands in for the certificate reloader: ``current`` is what it serves now."""

    current: Loaded | None


def sample(metrics: AdmissionMetrics, name: str, **labels: str) -> float | None:
    assert metrics.registry is not None
    return metrics.registry.get_sample_value(name, labels)


def test_the_served_certificates_expiry_follows_a_reload() -> None:
    first = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    reloader = Reloader(Loaded(first))
    metrics = AdmissionMetrics(certificates=reloader)
    assert sample(metrics, EXPIRY) == first.timestamp()
    renewed = first + datetime.timedelta(days=90)
    reloader.current = Loaded(renewed)
    assert sample(metrics, EXPIRY) == renewed.timestamp()


@pytest.mark.parametrize(
    ("certificates", "expected"),
    [
        pytest.param(None, None, id="no-certificate-source"),
        pytest.param(Reloader(None), None, id="nothing-loaded-yet"),
    ],
)
def test_no_expiry_sample_without_a_served_certificate(
    certificates: Reloader | None, expected: float | None
) -> None:
    assert sample(AdmissionMetrics(certificates=certificates), EXPIRY) is expected


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        *(
            pytest.param("mamori_admission_errors_total", {"reason": r}, id=f"error-{r}")
            for r in ERROR_REASONS
        ),
        *(
            pytest.param("mamori_webhook_event_posts_total", {"outcome": o}, id=f"event-{o}")
            for o in EVENT_OUTCOMES
        ),
    ],
)
def test_known_series_start_at_zero(name: str, labels: dict[str, str]) -> None:
    assert sample(AdmissionMetrics(), name, **labels) == 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


IMAGES = "mamori_webhook_registry_images_total"


def test_registry_answers_asked_are_counted_at_once_and_kept_ones_within_a_second() -> None:
    clock = Clock()
    metrics = AdmissionMetrics(clock=clock)
    assert sample(metrics, IMAGES, answer="kept") == 0
    metrics.count_registry(LookupReport(kept=4))
    metrics.count_registry(LookupReport(kept=4))
    assert sample(metrics, IMAGES, answer="kept") == 0  # held in the worker
    clock.now += KEPT_FLUSH_SECONDS
    metrics.count_registry(LookupReport(kept=1))
    assert sample(metrics, IMAGES, answer="kept") == 9
    metrics.count_registry(LookupReport(kept=2))
    metrics.count_registry(LookupReport(kept=1, asked=3, calls=7, waited=0.03))
    assert sample(metrics, IMAGES, answer="kept") == 12  # an asking review writes all out
    assert sample(metrics, IMAGES, answer="asked") == 3
    assert sample(metrics, "mamori_webhook_registry_calls_total") == 7
    assert sample(metrics, "mamori_webhook_registry_wait_seconds_count") == 1
    assert sample(metrics, "mamori_webhook_registry_wait_seconds_bucket", le="0.05") == 1
    assert sample(metrics, "mamori_webhook_registry_wait_seconds_bucket", le="0.025") == 0
    assert sample(metrics, "mamori_webhook_registry_budget_exhausted_total") == 0
    metrics.count_registry(LookupReport(asked=1, calls=1, exhausted=True, waited=2.0))
    assert sample(metrics, "mamori_webhook_registry_budget_exhausted_total") == 1


def test_a_review_answered_from_kept_answers_is_not_a_registry_wait() -> None:
    metrics = AdmissionMetrics(clock=Clock())
    metrics.count_registry(LookupReport(kept=4))
    assert sample(metrics, "mamori_webhook_registry_wait_seconds_count") == 0
    assert sample(metrics, "mamori_webhook_registry_calls_total") == 0
