"""spec.imageScan: providers in order, threshold, durations, and merging several policies."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.policy.errors import PolicyError
from mamori.policy.image_scan import (
    ImageScanSpec,
    Provider,
    Severity,
    merge_image_scans,
    parse_duration,
    parse_image_scan,
)


def test_absent_section_means_no_scanning() -> None:
    assert parse_image_scan(None, path="spec.imageScan") is None


def test_defaults() -> None:
    spec = parse_image_scan({"providers": ["ecr"]}, path="spec.imageScan")
    assert spec == ImageScanSpec(
        providers=(Provider.ECR,),
        severity_threshold=Severity.HIGH,
        cache_ttl=3600,
        rescan_interval=60,
    )


def test_every_field_is_read_and_provider_order_kept() -> None:
    spec = parse_image_scan(
        {
            "providers": ["imagescan", "trivy-operator", "ecr"],
            "severityThreshold": "MEDIUM",
            "cacheTTL": "2h30m",
            "rescanInterval": 45,
        },
        path="spec.imageScan",
    )
    assert spec is not None
    assert spec.providers == (Provider.IMAGESCAN, Provider.TRIVY_OPERATOR, Provider.ECR)
    assert spec.severity_threshold is Severity.MEDIUM
    assert spec.cache_ttl == 9000
    assert spec.rescan_interval == 45


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1h1m1s", 3661), (7, 7)]
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text, path="x") == seconds


# id: (section, field under spec.imageScan that the error names, fragment of the message)
BAD_SECTIONS: dict[str, tuple[Any, str, str]] = {
    "no-providers": ({}, ".providers", "at least one"),
    "empty": ({"providers": []}, ".providers", "at least one"),
    "unknown-provider": ({"providers": ["quay"]}, ".providers[0]", "ecr"),
    "twice": ({"providers": ["ecr", "ecr"]}, ".providers[1]", "twice"),
    "threshold-case": (
        {"providers": ["ecr"], "severityThreshold": "high"},
        ".severityThreshold",
        "CRITICAL, HIGH, MEDIUM, LOW",
    ),
    "days": ({"providers": ["ecr"], "cacheTTL": "1d"}, ".cacheTTL", "duration"),
    "short": ({"providers": ["ecr"], "rescanInterval": "1s"}, ".rescanInterval", "at least"),
    "bool": ({"providers": ["ecr"], "cacheTTL": True}, ".cacheTTL", "duration"),
    "unknown": ({"providers": ["ecr"], "scanner": "x"}, ".scanner", "unknown"),
    "not-an-object": ("ecr", "", "object"),
}


@pytest.mark.parametrize(
    ("value", "field", "fragment"),
    [pytest.param(*row, id=name) for name, row in BAD_SECTIONS.items()],
)
def test_bad_sections_name_the_field(value: Any, field: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_image_scan(value, path="spec.imageScan")
    assert caught.value.path == f"spec.imageScan{field}"
    assert fragment in caught.value.message


def test_severity_spellings_of_both_scanners() -> None:
    assert Severity.parse("CRITICAL") is Severity.CRITICAL
    assert Severity.parse("informational") is Severity.INFORMATIONAL
    assert Severity.parse("UNDEFINED") is Severity.UNKNOWN
    assert Severity.parse(None) is Severity.UNKNOWN


def test_merge_takes_the_strictest_of_each_field() -> None:
    first = ImageScanSpec(
        providers=(Provider.ECR,),
        severity_threshold=Severity.CRITICAL,
        cache_ttl=60,
        rescan_interval=600,
    )
    second = ImageScanSpec(
        providers=(Provider.IMAGESCAN, Provider.ECR),
        severity_threshold=Severity.LOW,
        cache_ttl=600,
        rescan_interval=30,
    )
    merged = merge_image_scans([first, second])
    assert merged == ImageScanSpec(
        providers=(Provider.ECR, Provider.IMAGESCAN),
        severity_threshold=Severity.LOW,
        cache_ttl=60,
        rescan_interval=30,
    )
    assert merge_image_scans([]) is None
