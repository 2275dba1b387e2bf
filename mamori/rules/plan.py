"""What one policy runs on every pod, worked out once when the policy is parsed.

Which rules a policy turns on depends only on its settings, never on the pod, so the choice is
made when a :class:`~mamori.policy.model.Policy` is built and kept on it: the engine then walks
a ready tuple per pod instead of filtering the registry per policy per pod.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mamori.rules import RULES
from mamori.rules.registry import CheckFunction, Level, Rule, RuleSettings, ScanCheckFunction


@dataclass(frozen=True, slots=True)
class RulePlan:
    """The rules a policy's settings turn on, in registration order, with those settings."""

    settings: RuleSettings
    rules: tuple[Rule, ...]
    checks: tuple[tuple[str, CheckFunction], ...] = field(init=False, repr=False, compare=False)
    """``(rule ID, check)`` of each rule: what the engine calls on every pod, each check the
    variant of the policy's pinned ``podSecurityVersion``."""
    scan_checks: tuple[tuple[str, ScanCheckFunction], ...] = field(
        init=False, repr=False, compare=False
    )
    """``(rule ID, check)`` of each rule that judges scan results: called only when the caller
    has a scan lookup; empty for a policy without ``spec.vulnerabilities``."""

    def __post_init__(self) -> None:
        minor = self.settings.pod_security_version
        plain = (rule for rule in self.rules if rule.scan_check is None)
        checks = tuple((rule.id, rule.check_for(minor)) for rule in plain)
        object.__setattr__(self, "checks", tuple((i, c) for i, c in checks if c is not None))
        scans = tuple((r.id, r.scan_check) for r in self.rules if r.scan_check is not None)
        object.__setattr__(self, "scan_checks", scans)

    @classmethod
    def compile(cls, settings: RuleSettings, *, rules: Iterable[Rule] = RULES) -> RulePlan:
        """PSS rules up to the policy's level that exist at its pinned version; image rules that
        can find something."""
        level, minor = settings.pod_security, settings.pod_security_version
        chosen = tuple(
            rule
            for rule in rules
            if (rule.level is Level.IMAGE or (level is not None and rule.level <= level))
            and rule.check_for(minor) is not None
            and rule.applies(settings)
        )
        return cls(settings=settings, rules=chosen)
