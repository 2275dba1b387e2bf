"""The one table of Dockerfile rules: each rule module registers itself under a ``dockerfile-``
ID.

IDs are a public contract (``mamori check`` output, CI configurations), so a duplicate is
refused at import time. A rule reads the parsed :class:`~mamori.dockerfile.stages.Dockerfile`,
the policy's :class:`~mamori.rules.registry.RuleSettings` (the same settings the pod rules
read) and the build context (files next to the Dockerfile, read only on request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from mamori.dockerfile.stages import Dockerfile
from mamori.rules.registry import RuleSettings

PREFIX = "dockerfile-"


@dataclass(frozen=True, slots=True)
class DockerfileFinding:
    """One thing a rule found, at a line; ``field`` names the instruction (``USER``,
    ``ENV DB_PASSWORD``) and ``stage`` the stage it is in. ``advisory`` findings never deny."""

    line: int
    field: str
    message: str
    stage: str | None = None
    advisory: bool = False


# A file in the build context (a path relative to the Dockerfile's directory) → its text, or
# None when it is absent, not a regular file, outside the context, or too large.
ContextReader = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class BuildContext:
    read: ContextReader


def no_context(path: str) -> str | None:
    """A build context with no files (Dockerfiles read from memory)."""
    return None


CheckFunction = Callable[[Dockerfile, RuleSettings, BuildContext], Sequence[DockerfileFinding]]
AppliesFunction = Callable[[RuleSettings], bool]


def always(settings: RuleSettings) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class DockerfileRule:
    id: str
    summary: str
    check: CheckFunction
    applies: AppliesFunction = always


class DuplicateRuleError(RuntimeError):
    """Two rule modules claimed the same ID."""


class DockerfileRuleRegistry:
    """Rules by ID, in registration order."""

    def __init__(self) -> None:
        self._rules: dict[str, DockerfileRule] = {}

    def register(
        self, *, rule_id: str, summary: str, applies: AppliesFunction = always
    ) -> Callable[[CheckFunction], CheckFunction]:
        if not rule_id.startswith(PREFIX):
            raise ValueError(f"Dockerfile rule IDs start with {PREFIX!r}: {rule_id!r}")

        def decorate(check: CheckFunction) -> CheckFunction:
            if rule_id in self._rules:
                raise DuplicateRuleError(f"rule ID {rule_id!r} is registered twice")
            self._rules[rule_id] = DockerfileRule(rule_id, summary, check, applies)
            return check

        return decorate

    def __iter__(self) -> Iterator[DockerfileRule]:
        return iter(self._rules.values())

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def get(self, rule_id: str) -> DockerfileRule:
        return self._rules[rule_id]

    def ids(self) -> tuple[str, ...]:
        return tuple(self._rules)

    def active(self, settings: RuleSettings) -> tuple[DockerfileRule, ...]:
        """The rules a policy's settings turn on."""
        return tuple(rule for rule in self if rule.applies(settings))


DOCKERFILE_RULES = DockerfileRuleRegistry()
rule = DOCKERFILE_RULES.register
