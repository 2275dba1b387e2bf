"""The one table of rules: each rule module registers itself here under a stable ID.

IDs are a public contract (CLI output, webhook messages, metrics, reports), so the registry
refuses a duplicate at import time instead of letting one rule silently shadow another.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from mamori.findings import Finding
from mamori.images import RegistryPattern, TrustedRegistries
from mamori.podspec import PodContext


class Level(enum.IntEnum):
    """Which policy setting turns a rule on.

    ``BASELINE`` and ``RESTRICTED`` follow the Pod Security Standards (restricted includes
    baseline). ``IMAGE`` rules are mamori's own and run at every level; each one decides from
    :class:`RuleSettings` whether it has anything to check.
    """

    BASELINE = 1
    RESTRICTED = 2
    IMAGE = 3


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """The parts of a policy that rules read; built once per policy, shared by every pod.

    ``pod_security`` is ``Level.BASELINE``, ``Level.RESTRICTED`` or ``None`` (privileged: no Pod
    Security Standards checks). A rule whose ID covers both levels (``capabilities``,
    ``seccomp-profile``) is registered at BASELINE and adds its restricted demands when
    :attr:`restricted` is true.
    """

    pod_security: Level | None = Level.RESTRICTED
    trusted_registries: tuple[RegistryPattern, ...] = ()
    require_image_digest: bool = False
    registries: TrustedRegistries = field(init=False, repr=False, compare=False)
    """``trusted_registries`` compiled for matching, once per policy."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "registries", TrustedRegistries(self.trusted_registries))

    @property
    def restricted(self) -> bool:
        """True when the restricted profile applies; rules with two levels check this."""
        return self.pod_security is Level.RESTRICTED


# A check returns a list (empty when the pod passes): the engine skips an empty one at once.
CheckFunction = Callable[[PodContext, RuleSettings], Sequence[Finding]]
AppliesFunction = Callable[[RuleSettings], bool]


def always(settings: RuleSettings) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered check. ``applies`` tells from a policy's settings alone whether the check can
    find anything at all (``trusted-registry`` without registries cannot), so a policy's
    :class:`~mamori.rules.plan.RulePlan` leaves it out instead of calling it on every pod."""

    id: str
    level: Level
    summary: str
    check: CheckFunction
    applies: AppliesFunction = always


class DuplicateRuleError(RuntimeError):
    """Two rule modules claimed the same ID."""


class RuleRegistry:
    """Rules by ID, in registration order."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def register(
        self, *, rule_id: str, level: Level, summary: str, applies: AppliesFunction = always
    ) -> Callable[[CheckFunction], CheckFunction]:
        """Decorate a check function to register it under ``rule_id``."""

        def decorate(check: CheckFunction) -> CheckFunction:
            if rule_id in self._rules:
                raise DuplicateRuleError(f"rule ID {rule_id!r} is registered twice")
            self._rules[rule_id] = Rule(
                id=rule_id, level=level, summary=summary, check=check, applies=applies
            )
            return check

        return decorate

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def get(self, rule_id: str) -> Rule:
        return self._rules[rule_id]

    def ids(self) -> tuple[str, ...]:
        return tuple(self._rules)


RULES = RuleRegistry()
rule = RULES.register
