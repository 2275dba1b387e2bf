"""The ``spec.vulnerabilities`` section: which scan findings keep a pod out, and for how long an
exception lasts.

The section reaches the ``image-vulnerabilities`` rule as a
:class:`~mamori.scans.VulnerabilityGate` on the policy's rule settings; the values it is made of
live in :mod:`mamori.scans`, next to the scan results they judge.
"""

from __future__ import annotations

import datetime
import re

from mamori.images import InvalidRegistryPattern, RegistryPattern
from mamori.policy.errors import PolicyError, shown
from mamori.policy.image_scan import parse_duration
from mamori.policy.shape import (
    ADVISORY_ID_PATTERN,
    EXPIRY_PATTERN,
    VULNERABILITIES,
    VULNERABILITY_EXCEPTION,
)
from mamori.policy.terms import Severity
from mamori.scans import UnscannedAction, VulnerabilityException, VulnerabilityGate

ADVISORY_ID = re.compile(ADVISORY_ID_PATTERN)
EXPIRY = re.compile(EXPIRY_PATTERN)
MAX_EXCEPTIONS = 256
MAX_IMAGES = 32
MAX_REASON = 1024


def parse_vulnerabilities(value: object, *, path: str) -> VulnerabilityGate | None:
    """Validate ``spec.vulnerabilities``; None (absent or null) means no scan-gated admission."""
    shape = VULNERABILITIES
    section = shape.read(value, path=path)
    if section is None:
        return None
    age = shape.value(section, "maxScanAge", path=path)
    return VulnerabilityGate(
        severity_threshold=Severity[shape.value(section, "severityThreshold", path=path)],
        unscanned=UnscannedAction(shape.value(section, "unscanned", path=path)),
        max_scan_age=None
        if age is None
        else datetime.timedelta(seconds=parse_duration(age, path=f"{path}.maxScanAge")),
        exceptions=_exceptions(
            shape.value(section, "exceptions", path=path), path=f"{path}.exceptions"
        ),
    )


def _exceptions(value: object, *, path: str) -> tuple[VulnerabilityException, ...]:
    if not isinstance(value, list):
        raise PolicyError(path, f"must be a list of exceptions, got {shown(value)}")
    if len(value) > MAX_EXCEPTIONS:
        raise PolicyError(path, f"must list at most {MAX_EXCEPTIONS} exceptions")
    return tuple(_exception(item, path=f"{path}[{index}]") for index, item in enumerate(value))


def _exception(value: object, *, path: str) -> VulnerabilityException:
    shape = VULNERABILITY_EXCEPTION
    item = shape.read(value, path=path)
    if item is None:
        raise PolicyError(path, "must be an object with vulnerability, expires and reason")
    for name in shape.required:
        if item.get(name) is None:
            raise PolicyError(f"{path}.{name}", "must be set")
    return VulnerabilityException(
        vulnerability=_advisory_id(item["vulnerability"], path=f"{path}.vulnerability"),
        expires=parse_expiry(item["expires"], path=f"{path}.expires"),
        reason=_reason(item["reason"], path=f"{path}.reason"),
        images=parse_image_prefixes(item.get("images"), path=f"{path}.images"),
        expires_as_written=str(item["expires"]),
    )


def _advisory_id(value: object, *, path: str) -> str:
    if not isinstance(value, str) or len(value) > 128 or not ADVISORY_ID.match(value):
        raise PolicyError(
            path,
            f"must be an advisory ID such as CVE-2026-1234 or GHSA-xxxx-xxxx-xxxx, got "
            f"{shown(value)}",
        )
    return value


def _reason(value: object, *, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(path, f"must say why the finding is accepted, got {shown(value)}")
    if len(value) > MAX_REASON:
        raise PolicyError(path, f"must be at most {MAX_REASON} characters")
    return value


def parse_image_prefixes(value: object, *, path: str) -> tuple[RegistryPattern, ...]:
    """Image prefixes written like trustedRegistries; None (absent) is none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(path, f"must be a list of image prefixes, got {shown(value)}")
    if len(value) > MAX_IMAGES:
        raise PolicyError(path, f"must list at most {MAX_IMAGES} image prefixes")
    patterns: list[RegistryPattern] = []
    for index, entry in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(entry, str):
            raise PolicyError(where, f"must be a string, got {shown(entry)}")
        try:
            patterns.append(RegistryPattern.parse(entry))
        except InvalidRegistryPattern as error:
            raise PolicyError(where, f"{error} (got {shown(entry)})") from None
    return tuple(patterns)


def parse_expiry(value: object, *, path: str) -> datetime.datetime:
    """An RFC 3339 date (the exception lasts to the end of that day, UTC) or date-time with an
    offset, as an aware datetime. YAML files may hand over a date or datetime already parsed."""
    expected = 'an RFC 3339 date or date-time such as "2026-12-31" or "2026-12-31T12:00:00Z"'
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    if isinstance(value, datetime.date):
        return _end_of(value)
    if not isinstance(value, str) or not EXPIRY.match(value):
        raise PolicyError(path, f"must be {expected}, got {shown(value)}")
    try:
        if len(value) == len("2026-12-31"):
            return _end_of(datetime.date.fromisoformat(value))
        return datetime.datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        raise PolicyError(path, f"must be {expected}, got {shown(value)}") from None


def _end_of(day: datetime.date) -> datetime.datetime:
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return start + datetime.timedelta(days=1)
