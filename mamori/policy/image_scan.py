"""The ``spec.imageScan`` section: where scan results come from and when an image is "vulnerable".

The operator asks the providers in the order listed, caches each answer per image digest, and
marks a pod ``vulnerable`` when one of its images has a finding at or above the threshold. When
several policies select one namespace, :func:`merge_image_scans` makes one strictest setting of
them, so a pod always has exactly one scan status.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mamori.policy.errors import PolicyError, shown
from mamori.policy.fields import parse_members, read_section

FIELDS = frozenset({"providers", "severityThreshold", "cacheTTL", "rescanInterval"})
DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
MIN_INTERVAL_SECONDS = 5


class Provider(enum.StrEnum):
    """Where scan results are read from."""

    ECR = "ecr"
    TRIVY_OPERATOR = "trivy-operator"
    IMAGESCAN = "imagescan"


class Severity(enum.IntEnum):
    """Finding severities, in rising order; names are the spelling ECR and Trivy use."""

    UNKNOWN = 0
    INFORMATIONAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, text: object) -> Severity:
        """Read a scanner's severity; anything unrecognised (``UNDEFINED``, ``NONE``) is UNKNOWN."""
        if not isinstance(text, str):
            return cls.UNKNOWN
        name = text.strip().upper()
        if name in ("INFO", "NEGLIGIBLE"):
            return cls.INFORMATIONAL
        return cls.__members__.get(name, cls.UNKNOWN)


THRESHOLDS = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)


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
    section = read_section(value, FIELDS, path=path)
    if section is None:
        return None
    threshold = section.get("severityThreshold", Severity.HIGH.name)
    if not isinstance(threshold, str) or threshold not in {t.name for t in THRESHOLDS}:
        choices = ", ".join(t.name for t in THRESHOLDS)
        raise PolicyError(
            f"{path}.severityThreshold", f"must be one of {choices}, got {shown(threshold)}"
        )
    return ImageScanSpec(
        providers=_providers(section.get("providers"), path=f"{path}.providers"),
        severity_threshold=Severity[threshold],
        cache_ttl=parse_duration(section.get("cacheTTL", "1h"), path=f"{path}.cacheTTL"),
        rescan_interval=parse_duration(
            section.get("rescanInterval", "1m"), path=f"{path}.rescanInterval"
        ),
    )


def _providers(value: object, *, path: str) -> tuple[Provider, ...]:
    choices = ", ".join(p.value for p in Provider)
    if not isinstance(value, list) or not value:
        raise PolicyError(path, f"must list at least one provider ({choices})")
    return parse_members(value, Provider, path=path, expected=f"one of {choices}")


def parse_duration(value: object, *, path: str) -> int:
    """Read ``90s``, ``5m``, ``1h30m`` (or a number of seconds) as seconds; at least 5 seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value and (match := DURATION.match(value)):
        hours, minutes, secs = (int(match.group(k) or 0) for k in ("h", "m", "s"))
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        expected = 'a duration such as "30s", "5m" or "1h30m"'
        raise PolicyError(path, f"must be {expected}, got {shown(value)}")
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
