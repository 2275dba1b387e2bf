"""The one table of rules: each rule module registers itself here under a stable ID.

IDs are a public contract (CLI output, webhook messages, metrics, reports), so the registry
refuses a duplicate at import time instead of letting one rule silently shadow another.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Self

from mamori.findings import Finding
from mamori.images import RegistryPattern, TrustedRegistries
from mamori.podspec import PodContext

if TYPE_CHECKING:  # mamori.scans reads the policy's terms, which import this module
    from mamori.scans import ScanLookup, VulnerabilityGate
    from mamori.supplychain.lookup import RegistryLookup
    from mamori.supplychain.requirements import SignatureRequirement


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


class FrozenValue:
    """What a frozen dataclass gave the policy's values, written once instead of generated.

    ``mamori check`` defines :class:`RuleSettings`, :class:`~mamori.rules.plan.RulePlan` and
    :class:`~mamori.policy.model.Policy` at every start; as dataclasses they cost the import of
    ``dataclasses`` (with inspect, ast, dis and tokenize) and the generation of their methods.
    A subclass lists its constructor's parameters, in order, as ``__match_args__`` (as a
    dataclass does): those are compared, hashed, shown and copied, exactly as a dataclass
    compares its fields; the fields it derives from them (``compare=False`` before) are not.
    """

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({shown})"

    def __reduce__(self) -> tuple[type[Self], tuple[Any, ...]]:
        return type(self), self._values()  # copies and pickles are built as the original was

    def _replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (as ``dataclasses.replace``, or a named tuple's)."""
        values = {name: getattr(self, name) for name in self.__match_args__}
        return type(self)(**{**values, **changes})


class RuleSettings(FrozenValue):
    """The parts of a policy that rules read; built once per policy, shared by every pod.

    ``pod_security`` is ``Level.BASELINE``, ``Level.RESTRICTED`` or ``None`` (privileged: no Pod
    Security Standards checks). A rule whose ID covers both levels (``capabilities``,
    ``seccomp-profile``) is registered at BASELINE and adds its restricted demands when
    :attr:`restricted` is true.
    """

    __slots__ = (
        "pod_security",
        "pod_security_version",
        "registries",
        "require_image_digest",
        "signatures",
        "switches",
        "trusted_registries",
        "vulnerabilities",
    )
    __match_args__ = (
        "pod_security",
        "trusted_registries",
        "require_image_digest",
        "pod_security_version",
        "switches",
        "vulnerabilities",
        "signatures",
    )

    pod_security: Level | None
    trusted_registries: tuple[RegistryPattern, ...]
    require_image_digest: bool
    pod_security_version: int | None
    """The Kubernetes minor version (``1.N``) whose Pod Security Standards apply; None: the
    newest mamori knows. Only :meth:`RulePlan.compile` reads it, once per policy."""
    switches: frozenset[str]
    """Names of the spec's boolean switches (declared with ``switch=True`` in
    mamori/policy/shape.py) that this policy turns on; a rule asks :meth:`switched_on`."""
    vulnerabilities: VulnerabilityGate | None
    """The parsed ``spec.vulnerabilities`` section; None: no scan-gated admission."""
    signatures: tuple[SignatureRequirement, ...]
    """The parsed ``spec.imageSignatures`` entries; empty: no signature is required."""
    registries: TrustedRegistries
    """``trusted_registries`` compiled for matching, once per policy (derived: not compared)."""

    def __init__(
        self,
        pod_security: Level | None = Level.RESTRICTED,
        trusted_registries: tuple[RegistryPattern, ...] = (),
        require_image_digest: bool = False,
        pod_security_version: int | None = None,
        switches: frozenset[str] = frozenset(),
        vulnerabilities: VulnerabilityGate | None = None,
        signatures: tuple[SignatureRequirement, ...] = (),
    ) -> None:
        set_field = object.__setattr__
        set_field(self, "pod_security", pod_security)
        set_field(self, "trusted_registries", trusted_registries)
        set_field(self, "require_image_digest", require_image_digest)
        set_field(self, "pod_security_version", pod_security_version)
        set_field(self, "switches", switches)
        set_field(self, "vulnerabilities", vulnerabilities)
        set_field(self, "signatures", signatures)
        set_field(self, "registries", TrustedRegistries(trusted_registries))

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


class Needs(enum.Enum):
    """Evidence about images that is not in the manifest, which some rules judge."""

    SCANS = "scan results (ImageScans)"
    REGISTRY = "registry access"


class ImageEvidence(NamedTuple):
    """What the caller knows about images beyond the manifest; None where it knows nothing."""

    scans: ScanLookup | None = None
    registry: RegistryLookup | None = None

    def has(self, need: Needs) -> bool:
        return (self.scans if need is Needs.SCANS else self.registry) is not None


# A rule that judges evidence (``needs``) is also called with the caller's evidence.
EvidenceCheckFunction = Callable[[PodContext, RuleSettings, ImageEvidence], Sequence[Finding]]


def always(settings: RuleSettings) -> bool:
    return True


class Rule(NamedTuple):
    """A registered check. ``applies`` tells from a policy's settings alone whether the check can
    find anything at all (``trusted-registry`` without registries cannot), so a policy's
    :class:`~mamori.rules.plan.RulePlan` leaves it out instead of calling it on every pod.

    ``check`` is what the newest Pod Security Standards demand. ``versions`` records, as
    pod-security-admission does, the Kubernetes minor version from which each variant of the
    check applies, oldest first, ending with ``check``; a policy pinned to ``v1.N`` runs the
    last variant from ``N`` or earlier, and none when the rule is newer than ``v1.N``.

    ``evidence_check`` is set on a rule that judges evidence from outside the manifest, scan
    results or registries (registered with :meth:`RuleRegistry.register_evidence_rule`,
    ``needs`` saying which): the engine calls it with the caller's :class:`ImageEvidence`, and
    skips it when the caller has none of what it needs. Its ``check`` is what it finds without
    evidence: nothing.
    """

    id: str
    level: Level
    summary: str
    check: CheckFunction
    applies: AppliesFunction = always
    versions: tuple[tuple[int, CheckFunction], ...] = ()
    evidence_check: EvidenceCheckFunction | None = None
    needs: frozenset[Needs] = frozenset()

    @property
    def needs_scans(self) -> bool:
        return Needs.SCANS in self.needs

    @property
    def needs_evidence(self) -> bool:
        return self.evidence_check is not None

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

    def register_evidence_rule(
        self,
        *,
        rule_id: str,
        level: Level,
        summary: str,
        applies: AppliesFunction,
        needs: frozenset[Needs],
    ) -> Callable[[EvidenceCheckFunction], EvidenceCheckFunction]:
        """Decorate a check of evidence (``needs``: scan results, registry access) to register
        it under ``rule_id``."""
        if not needs:
            raise ValueError(f"rule {rule_id!r}: an evidence rule needs some evidence")

        def decorate(check: EvidenceCheckFunction) -> EvidenceCheckFunction:
            if rule_id in self._rules:
                raise DuplicateRuleError(f"rule ID {rule_id!r} is registered twice")
            self._rules[rule_id] = Rule(
                id=rule_id,
                level=level,
                summary=summary,
                check=_finds_nothing,
                applies=applies,
                evidence_check=check,
                needs=needs,
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
    """An evidence rule without evidence: it cannot judge, so it finds nothing."""
    return []


RULES = RuleRegistry()
rule = RULES.register
evidence_rule = RULES.register_evidence_rule
