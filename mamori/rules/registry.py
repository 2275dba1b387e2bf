"""The one table of rules: each rule module registers itself here under a stable ID.

IDs are a public contract (CLI output, webhook messages, metrics, reports), so the registry
refuses a duplicate at import time instead of letting one rule silently shadow another.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mamori.findings import Finding
from mamori.images import RegistryPattern, TrustedRegistries
from mamori.podspec import PodContext

if TYPE_CHECKING:  # mamori.scans reads the policy's terms, which import this module
    from mamori.scans import ScanLookup, VulnerabilityGate


class Level(enum.IntEnum):
    """Which policy setting turns a rule on.

    ``BASELINE`` and ``RESTRICTED`` follow the Pod Security Standards (restricted includes
    baseline). ``IMAGE`` rules are mamori's own and run at every level; each one decides from
    :class:`RuleSettings` whether it has anything to check.
    """

    BASELINE = 1
    RESTRICTED = 2
    IMAGE = 3


POD_SECURITY_LEVELS: Mapping[str, Level | None] = {
    "restricted": Level.RESTRICTED,
    "baseline": Level.BASELINE,
    "privileged": None,
}
"""``spec.podSecurity`` names and the rule level each turns on (privileged: none)."""


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
    vulnerabilities: VulnerabilityGate | None = None
    """The parsed ``spec.vulnerabilities`` section; None: no scan-gated admission."""
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
# A rule that needs scan results (``needs_scans``) is also called with the caller's lookup.
ScanCheckFunction = Callable[[PodContext, RuleSettings, "ScanLookup"], Sequence[Finding]]


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

    ``scan_check`` is set on a rule that judges scan results (registered with
    :meth:`RuleRegistry.register_scan_rule`): the engine calls it with the caller's
    :class:`~mamori.scans.ScanLookup`, and skips the rule when the caller has none. Its
    ``check`` is what it finds without one: nothing.
    """

    id: str
    level: Level
    summary: str
    check: CheckFunction
    applies: AppliesFunction = always
    versions: tuple[tuple[int, CheckFunction], ...] = ()
    scan_check: ScanCheckFunction | None = None

    @property
    def needs_scans(self) -> bool:
        return self.scan_check is not None

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

    def register_scan_rule(
        self, *, rule_id: str, level: Level, summary: str, applies: AppliesFunction
    ) -> Callable[[ScanCheckFunction], ScanCheckFunction]:
        """Decorate a check of scan results to register it under ``rule_id``."""

        def decorate(check: ScanCheckFunction) -> ScanCheckFunction:
            if rule_id in self._rules:
                raise DuplicateRuleError(f"rule ID {rule_id!r} is registered twice")
            self._rules[rule_id] = Rule(
                id=rule_id,
                level=level,
                summary=summary,
                check=_finds_nothing,
                applies=applies,
                scan_check=check,
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


def _finds_nothing(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    """A scan rule without scan results: it cannot judge, so it finds nothing."""
    return []


RULES = RuleRegistry()
rule = RULES.register
scan_rule = RULES.register_scan_rule
