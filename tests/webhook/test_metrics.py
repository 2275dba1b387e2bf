"""The webhook's metrics (mamori_webhook/metrics.py): the served certificate's expiry, read at
scrape time, and error and Event series that exist before the first one."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest

from mamori_webhook.metrics import ERROR_REASONS, EVENT_OUTCOMES, AdmissionMetrics

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
