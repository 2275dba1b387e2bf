"""The one table of rules: each rule module registers itself here under a stable ID.

IDs are a public contract (CLI output, webhook messages, metrics, reports), so the registry
refuses a duplicate at import time instead of letting one rule silently shadow another.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    pod_security_version: int | None = None
    """The Kubernetes minor version (``1.N``) whose Pod Security Standards apply; None: the
    newest mamori knows. Only :meth:`RulePlan.compile` reads it, once per policy."""
    switches: frozenset[str] = frozenset()
    """Names of the spec's boolean switches (declared with ``switch=True`` in
    mamori/policy/shape.py) that this policy turns on; a rule asks :meth:`switched_on`."""
    registries: TrustedRegistries = field(init=False, repr=False, compare=False)
    """``trusted_registries`` compiled for matching, once per policy."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "registries", TrustedRegistries(self.trusted_registries))

    def switched_on(self, name: str) -> bool:
        """True when the policy sets the spec switch ``name`` (e.g. a ``require...: true``)."""
        return name in self.switches

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
    :class:`~mamori.rules.plan.RulePlan` leaves it out instead of calling it on every pod.

    ``check`` is what the newest Pod Security Standards demand. ``versions`` records, as
    pod-security-admission does, the Kubernetes minor version from which each variant of the
    check applies, oldest first, ending with ``check``; a policy pinned to ``v1.N`` runs the
    last variant from ``N`` or earlier, and none when the rule is newer than ``v1.N``.
    """

    id: str
    level: Level
    summary: str
    check: CheckFunction
    applies: AppliesFunction = always
    versions: tuple[tuple[int, CheckFunction], ...] = ()

    def check_for(self, minor: int | None) -> CheckFunction | None:
        """The variant for Kubernetes ``1.<minor>`` (None: the newest), or None before the rule."""
        if minor is None or not self.versions:
            return self.check
        chosen: CheckFunction | None = None
        for since, check in self.versions:
            if since > minor:
                break
            chosen = check
        return chosen

    @property
    def since(self) -> int:
        """The first Kubernetes minor version this rule applies to."""
        return self.versions[0][0] if self.versions else 0


class DuplicateRuleError(RuntimeError):
    """Two rule modules claimed the same ID."""


class RuleRegistry:
    """Rules by ID, in registration order."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def register(
        self,
        *,
        rule_id: str,
        level: Level,
        summary: str,
        applies: AppliesFunction = always,
        since: int = 0,
        older: Mapping[int, CheckFunction] | None = None,
    ) -> Callable[[CheckFunction], CheckFunction]:
        """Decorate a check function to register it under ``rule_id``.

        The decorated check is the newest variant and applies from Kubernetes ``1.<since>``;
        ``older`` maps the minor version each earlier variant applies from to that variant.
        """
        history = sorted({**(older or {}), since: None}.items())
        if history[-1][0] != since:
            raise ValueError(f"rule {rule_id!r}: older variants must start before 1.{since}")

        def decorate(check: CheckFunction) -> CheckFunction:
            if rule_id in self._rules:
                raise DuplicateRuleError(f"rule ID {rule_id!r} is registered twice")
            versions = tuple((minor, variant or check) for minor, variant in history)
            self._rules[rule_id] = Rule(
                id=rule_id,
                level=level,
                summary=summary,
                check=check,
                applies=applies,
                versions=versions,
            )
            return check

        return decorate

    def newest_version(self) -> int:
        """The newest Kubernetes minor version at which some rule changes."""
        return max((minor for rule in self for minor, _ in rule.versions), default=0)

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
