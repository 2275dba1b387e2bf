"""Checks that every section parser of a ClusterSecurityPolicy needs, worded the same everywhere."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from mamori.findings import render_value
from mamori.policy.errors import PolicyError

Member = TypeVar("Member", bound=enum.StrEnum)


def read_section(value: object, known: Iterable[str], *, path: str) -> Mapping[str, Any] | None:
    """An optional section of the spec: None when absent or null, else an object of known fields."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PolicyError(path, f"must be an object, got {type(value).__name__}")
    reject_unknown_fields(value, known, path=path)
    return value


def reject_unknown_fields(
    section: Mapping[str, object], known: Iterable[str], *, path: str
) -> None:
    """Refuse a misspelt field instead of ignoring it, naming the first one and the known ones."""
    names = sorted(known)
    unknown = sorted(set(section) - set(names))
    if unknown:
        raise PolicyError(f"{path}.{unknown[0]}", f"unknown field (known: {', '.join(names)})")


def parse_members(
    items: Iterable[object], kind: type[Member], *, path: str, expected: str
) -> tuple[Member, ...]:
    """Read a list of enum values in order; a repeat is an error (it is always a typo)."""
    members: list[Member] = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or item not in {m.value for m in kind}:
            shown = render_value(item, limit=80)
            raise PolicyError(f"{path}[{index}]", f"must be {expected}, got {shown}")
        member = kind(item)
        if member in members:
            raise PolicyError(f"{path}[{index}]", f'"{member}" is listed twice')
        members.append(member)
    return tuple(members)
