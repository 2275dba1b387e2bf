"""A fixture file of a rule's table (tests/fixtures/<rule-id>/{pass,fail}/…): pod rules and
Dockerfile rules read theirs the same way."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class FixtureFile:
    rule: str
    outcome: str  # "pass" or "fail"
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")
