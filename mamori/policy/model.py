"""ClusterSecurityPolicy as typed values: what every front door reads after validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from mamori.findings import Enforcement
from mamori.policy.selector import LabelSelector
from mamori.rules.plan import RulePlan
from mamori.rules.registry import FrozenValue, RuleSettings

if TYPE_CHECKING:  # the sections' modules load only where a section is parsed
    from mamori.policy.image_scan import ImageScanSpec
    from mamori.policy.network import NetworkPolicySpec

API_GROUP = "mamori.io"
VERSION = "v1alpha1"  # of every mamori.io resource: ClusterSecurityPolicy and ImageScan
API_VERSION = f"{API_GROUP}/{VERSION}"
KIND = "ClusterSecurityPolicy"
PLURAL = "clustersecuritypolicies"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


# A default built afresh for each policy (a dataclass's ``default_factory``): ``sections`` is a
# dict, which no two policies may share.
_FRESH: Any = object()


class Policy(FrozenValue):
    """One validated ClusterSecurityPolicy.

    ``sections`` keeps the operator's parts of the spec (``networkPolicy``, ``imageScan``) as
    parsed by their own modules, so the admission path never depends on them.

    ``plan`` (the rules these settings run) and ``selects_all`` (no exemption, no selector) are
    derived once, here, so that judging a pod never recomputes them; they are not compared.
    """

    __slots__ = (
        "enforcement",
        "exempt_namespaces",
        "generation",
        "name",
        "namespace_selector",
        "plan",
        "rules",
        "sections",
        "selects_all",
    )
    __match_args__ = (
        "name",
        "enforcement",
        "rules",
        "exempt_namespaces",
        "namespace_selector",
        "generation",
        "sections",
    )

    name: str
    enforcement: Enforcement
    rules: RuleSettings
    exempt_namespaces: frozenset[str]
    namespace_selector: LabelSelector
    generation: int | None
    sections: Mapping[str, Any]
    plan: RulePlan
    selects_all: bool

    def __init__(
        self,
        name: str,
        enforcement: Enforcement = Enforcement.ENFORCE,
        rules: RuleSettings = _FRESH,
        exempt_namespaces: frozenset[str] = frozenset(),
        namespace_selector: LabelSelector = _FRESH,
        generation: int | None = None,
        sections: Mapping[str, Any] = _FRESH,
    ) -> None:
        rules = RuleSettings() if rules is _FRESH else rules
        namespace_selector = LabelSelector() if namespace_selector is _FRESH else namespace_selector
        set_field = object.__setattr__
        set_field(self, "name", name)
        set_field(self, "enforcement", enforcement)
        set_field(self, "rules", rules)
        set_field(self, "exempt_namespaces", exempt_namespaces)
        set_field(self, "namespace_selector", namespace_selector)
        set_field(self, "generation", generation)
        set_field(self, "sections", {} if sections is _FRESH else sections)
        set_field(self, "plan", RulePlan.compile(rules))
        everything = not exempt_namespaces and not namespace_selector.requirements
        set_field(self, "selects_all", everything)

    def selects(self, namespace: str | None, labels: Mapping[str, str] | None = None) -> bool:
        """Tell whether this policy covers ``namespace`` (None: cluster-scoped or unknown).

        The ``kubernetes.io/metadata.name`` label is always implied, as the API server sets it
        on every namespace; that lets offline checks honour name-based selectors.
        """
        if self.selects_all:
            return True
        if namespace is not None and namespace in self.exempt_namespaces:
            return False
        if not self.namespace_selector.requirements:
            return True
        effective = dict(labels or {})
        if namespace is not None:
            effective.setdefault(NAMESPACE_NAME_LABEL, namespace)
        return self.namespace_selector.matches(effective)

    @property
    def network_policy(self) -> NetworkPolicySpec | None:
        """The parsed ``networkPolicy`` section; None when the policy has none."""
        return cast("NetworkPolicySpec | None", self.sections.get("networkPolicy"))

    @property
    def image_scan(self) -> ImageScanSpec | None:
        """The parsed ``imageScan`` section; None when the policy has none."""
        return cast("ImageScanSpec | None", self.sections.get("imageScan"))

    def is_exempt(self, namespace: str | None) -> bool:
        return namespace is not None and namespace in self.exempt_namespaces


def default_policy() -> Policy:
    """The policy of ``mamori check`` without ``--policy``: restricted, no registry rule."""
    return Policy(name="default")
