"""ClusterSecurityPolicy as typed values: what every front door reads after validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from mamori.findings import Enforcement
from mamori.policy.selector import LabelSelector
from mamori.rules.plan import RulePlan
from mamori.rules.registry import RuleSettings

if TYPE_CHECKING:  # the sections' modules load only where a section is parsed
    from mamori.policy.image_scan import ImageScanSpec
    from mamori.policy.network import NetworkPolicySpec

API_GROUP = "mamori.io"
VERSION = "v1alpha1"  # of every mamori.io resource: ClusterSecurityPolicy and ImageScan
API_VERSION = f"{API_GROUP}/{VERSION}"
KIND = "ClusterSecurityPolicy"
PLURAL = "clustersecuritypolicies"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True, slots=True)
class Policy:
    """One validated ClusterSecurityPolicy.

    ``sections`` keeps the operator's parts of the spec (``networkPolicy``, ``imageScan``) as
    parsed by their own modules, so the admission path never depends on them.

    ``plan`` (the rules these settings run) and ``selects_all`` (no exemption, no selector) are
    derived once, here, so that judging a pod never recomputes them.
    """

    name: str
    enforcement: Enforcement = Enforcement.ENFORCE
    rules: RuleSettings = field(default_factory=RuleSettings)
    exempt_namespaces: frozenset[str] = frozenset()
    namespace_selector: LabelSelector = field(default_factory=LabelSelector)
    generation: int | None = None
    sections: Mapping[str, Any] = field(default_factory=dict)
    plan: RulePlan = field(init=False, repr=False, compare=False)
    selects_all: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plan", RulePlan.compile(self.rules))
        everything = not self.exempt_namespaces and not self.namespace_selector.requirements
        object.__setattr__(self, "selects_all", everything)

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
