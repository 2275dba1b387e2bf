"""Durations as people write them in flags and policies: ``90d``, ``720h``, ``1h30m``, ``45s``.

One grammar for every setting that takes a duration: units in the order d, h, m, s, each at most
once. The operator's certificate flags take days (certificates live for months); a policy's
``imageScan`` intervals stop at hours (``with_days=False``): a scan result cached for days
would hide new findings, and the policy's schema has always refused ``d``.
"""

from __future__ import annotations

import datetime
import re

_UNITS = ("days", "hours", "minutes", "seconds")
_HOURS_TO_SECONDS = "(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$"
PATTERN = "^(?:([0-9]+)d)?" + _HOURS_TO_SECONDS
"""The grammar as a JSON-schema pattern (for a CRD or a values schema)."""
PATTERN_WITHOUT_DAYS = "^" + _HOURS_TO_SECONDS
_WITH_DAYS, _WITHOUT_DAYS = re.compile(PATTERN), re.compile(PATTERN_WITHOUT_DAYS)


def parse_duration(text: str, *, with_days: bool = True) -> datetime.timedelta:
    """``"90d"``, ``"2160h"``, ``"1h30m"``, ``"45s"`` → a timedelta (raises ValueError)."""
    stripped = text.strip()
    match = (_WITH_DAYS if with_days else _WITHOUT_DAYS).match(stripped)
    if not stripped or match is None:
        examples = "90d, 720h, 1h30m or 30s" if with_days else "1h, 1h30m, 5m or 30s"
        raise ValueError(f"{text!r} is not a duration such as {examples}")
    units = _UNITS if with_days else _UNITS[1:]
    parts = {unit: int(value) for unit, value in zip(units, match.groups(), strict=True) if value}
    return datetime.timedelta(**parts)
