"""What rules report and what the engine decides: plain values shared by every front door."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Enforcement(enum.StrEnum):
    """What a policy does with a violation."""

    ENFORCE = "Enforce"
    WARN = "Warn"
    AUDIT = "Audit"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a rule found: where it is and what to change.

    ``field`` is the full path into the object the user wrote
    (``spec.template.spec.containers[0].securityContext.runAsNonRoot``), so the message can be
    acted on without knowing how mamori walks workloads. ``advisory`` findings never deny: they
    are hints (kubectl warnings) such as "the image must declare a numeric USER".
    """

    field: str
    message: str
    container: str | None = None
    advisory: bool = False


@dataclass(frozen=True, slots=True)
class Violation:
    """A finding attributed to the rule and policy that produced it."""

    rule: str
    policy: str
    enforcement: Enforcement
    field: str
    message: str
    container: str | None = None
    advisory: bool = False

    def sort_key(self) -> tuple[str, str, str, str, str]:
        return (self.policy, self.rule, self.field, self.container or "", self.message)

    def to_dict(self) -> dict[str, str | None]:
        """Serialize in the shape of ``mamori check --output json``."""
        return {
            "rule": self.rule,
            "policy": self.policy,
            "enforcement": self.enforcement.value,
            "container": self.container,
            "field": self.field,
            "message": self.message,
        }

    def render(self) -> str:
        """One line for kubectl and terminals: ``[rule] field: message``."""
        return f"[{self.rule}] {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one resource across every policy that selects it.

    ``violations`` holds every non-advisory finding in a stable order; ``advice`` holds the
    advisory ones. A resource is allowed unless some violation comes from an Enforce policy.
    """

    violations: tuple[Violation, ...] = ()
    advice: tuple[Violation, ...] = ()
    policies: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.denials

    @property
    def denials(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.enforcement is Enforcement.ENFORCE)

    @property
    def warnings(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.enforcement is Enforcement.WARN)

    @property
    def audits(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.enforcement is Enforcement.AUDIT)
