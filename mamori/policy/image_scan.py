"""The ``spec.imageScan`` section: where scan results come from and when an image is "vulnerable".

The operator asks the providers in the order listed, caches each answer per image digest, and
marks a pod ``vulnerable`` when one of its images has a finding at or above the threshold. When
several policies select one namespace, :func:`merge_image_scans` makes one strictest setting of
them, so a pod always has exactly one scan status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mamori import durations
from mamori.policy.errors import PolicyError, shown
from mamori.policy.fields import parse_members
from mamori.policy.shape import IMAGE_SCAN
from mamori.policy.terms import THRESHOLDS, Provider, Severity

__all__ = [
    "THRESHOLDS",
    "ImageScanSpec",
    "Provider",
    "Severity",
    "merge_image_scans",
    "parse_duration",
    "parse_image_scan",
]

MIN_INTERVAL_SECONDS = 5


@dataclass(frozen=True, slots=True)
class ImageScanSpec:
    """The parsed section.

    ``cache_ttl`` is how long a finished result (clean or vulnerable) for a digest is reused
    before the providers are asked again (new CVEs get published for old images);
    ``rescan_interval`` is how soon an image that is pending, unscanned or in error is looked up
    again. Both are seconds.
    """

    providers: tuple[Provider, ...]
    severity_threshold: Severity = Severity.HIGH
    cache_ttl: int = 3600
    rescan_interval: int = 60


def parse_image_scan(value: object, *, path: str) -> ImageScanSpec | None:
    """Validate ``spec.imageScan``; None (absent or null) means "no scan status on pods"."""
    shape = IMAGE_SCAN
    section = shape.read(value, path=path)
    if section is None:
        return None
    return ImageScanSpec(
        providers=_providers(section.get("providers"), path=f"{path}.providers"),
        severity_threshold=Severity[shape.value(section, "severityThreshold", path=path)],
        cache_ttl=parse_duration(
            shape.value(section, "cacheTTL", path=path), path=f"{path}.cacheTTL"
        ),
        rescan_interval=parse_duration(
            shape.value(section, "rescanInterval", path=path), path=f"{path}.rescanInterval"
        ),
    )


def _providers(value: object, *, path: str) -> tuple[Provider, ...]:
    choices = ", ".join(p.value for p in Provider)
    if not isinstance(value, list) or not value:
        raise PolicyError(path, f"must list at least one provider ({choices})")
    return parse_members(value, Provider, path=path, expected=f"one of {choices}")


def parse_duration(value: object, *, path: str) -> int:
    """Read ``90s``, ``5m``, ``1h30m`` (:mod:`mamori.durations`, without days) or a number of
    seconds, as seconds; at least 5 seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        try:
            if not isinstance(value, str):
                raise ValueError("not text")
            seconds = int(durations.parse_duration(value, with_days=False).total_seconds())
        except ValueError:
            expected = 'a duration such as "30s", "5m" or "1h30m"'
            raise PolicyError(path, f"must be {expected}, got {shown(value)}") from None
    if seconds < MIN_INTERVAL_SECONDS:
        raise PolicyError(path, f"must be at least {MIN_INTERVAL_SECONDS}s, got {shown(value)}")
    return seconds


def merge_image_scans(specs: Iterable[ImageScanSpec]) -> ImageScanSpec | None:
    """One setting for a namespace that several policies select: the strictest of each field.

    Providers keep the order of their first mention (callers pass policies sorted by name);
    the lowest threshold and the shortest intervals win.
    """
    merged: ImageScanSpec | None = None
    for spec in specs:
        if merged is None:
            merged = spec
            continue
        providers = merged.providers + tuple(p for p in spec.providers if p not in merged.providers)
        merged = ImageScanSpec(
            providers=providers,
            severity_threshold=min(merged.severity_threshold, spec.severity_threshold),
            cache_ttl=min(merged.cache_ttl, spec.cache_ttl),
            rescan_interval=min(merged.rescan_interval, spec.rescan_interval),
        )
    return merged
