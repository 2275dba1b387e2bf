"""Checks that every section parser of a ClusterSecurityPolicy needs, worded the same everywhere."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TypeVar

from mamori.findings import render_value
from mamori.policy.errors import PolicyError

Member = TypeVar("Member", bound=enum.StrEnum)


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
