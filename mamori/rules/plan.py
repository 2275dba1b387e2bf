"""What one policy runs on every pod, worked out once when the policy is parsed.

Which rules a policy turns on depends only on its settings, never on the pod, so the choice is
made when a :class:`~mamori.policy.model.Policy` is built and kept on it: the engine then walks
a ready tuple per pod instead of filtering the registry per policy per pod.
"""

from __future__ import annotations

from collections.abc import Iterable

from mamori.rules import RULES
from mamori.rules.registry import (
    CheckFunction,
    EvidenceCheckFunction,
    FrozenValue,
    Level,
    Needs,
    Rule,
    RuleSettings,
)


class RulePlan(FrozenValue):
    """The rules a policy's settings turn on, in registration order, with those settings.

    Compared, hashed and shown by ``settings`` and ``rules``; the rest is derived from them.
    """

    __slots__ = ("checks", "evidence_checks", "needs", "rules", "settings")
    __match_args__ = ("settings", "rules")

    settings: RuleSettings
    rules: tuple[Rule, ...]
    checks: tuple[tuple[str, CheckFunction], ...]
    """``(rule ID, check)`` of each rule: what the engine calls on every pod, each check the
    variant of the policy's pinned ``podSecurityVersion``."""
    evidence_checks: tuple[tuple[str, EvidenceCheckFunction], ...]
    """``(rule ID, check)`` of each rule that judges evidence from outside the manifest (scan
    results, registries): called only when the caller has some; empty for a policy without
    ``spec.vulnerabilities`` or ``spec.imageSignatures``."""
    needs: frozenset[Needs]
    """Every kind of evidence the policy's rules judge."""

    def __init__(self, settings: RuleSettings, rules: tuple[Rule, ...]) -> None:
        minor = settings.pod_security_version
        plain = (rule for rule in rules if rule.evidence_check is None)
        checks = tuple((rule.id, rule.check_for(minor)) for rule in plain)
        judged = tuple((r.id, r.evidence_check) for r in rules if r.evidence_check is not None)
        set_field = object.__setattr__
        set_field(self, "settings", settings)
        set_field(self, "rules", rules)
        set_field(self, "checks", tuple((i, c) for i, c in checks if c is not None))
        set_field(self, "evidence_checks", judged)
        set_field(self, "needs", frozenset(n for r in rules for n in r.needs))

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
