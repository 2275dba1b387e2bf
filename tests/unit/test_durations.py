"""The one duration grammar (mamori/durations.py), with and without days, and its schema pattern."""

from __future__ import annotations

import datetime
import re

import pytest

from mamori.durations import PATTERN, PATTERN_WITHOUT_DAYS, parse_duration

SECOND = datetime.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "with_days", "seconds"),
    [
        ("90d", True, 90 * 86400),
        ("1d12h", True, 36 * 3600),
        ("1h30m", True, 5400),
        ("1h30m", False, 5400),
        ("45s", False, 45),
        (" 15m ", False, 900),
    ],
)
def test_valid_durations(text: str, with_days: bool, seconds: int) -> None:
    assert parse_duration(text, with_days=with_days) == seconds * SECOND


@pytest.mark.parametrize(
    ("text", "with_days"),
    [("1d", False), ("", True), ("5", True), ("1m1h", True), ("1.5h", True), ("-5m", True)],
)
def test_invalid_durations_are_refused(text: str, with_days: bool) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text, with_days=with_days)


@pytest.mark.parametrize("text", ["90d", "1h30m", "45s", "1d", "1m1h", "x", "5"])
def test_the_schema_patterns_accept_exactly_what_the_parser_accepts(text: str) -> None:
    for pattern, with_days in ((PATTERN, True), (PATTERN_WITHOUT_DAYS, False)):
        try:
            parse_duration(text, with_days=with_days)
            parsed = True
        except ValueError:
            parsed = False
        assert (re.fullmatch(pattern, text) is not None) is parsed, (pattern, text)
