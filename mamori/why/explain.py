"""Why each ClusterSecurityPolicy judges an object or not, and what the judging found. Pure.

The verdict comes from :func:`mamori.engine.evaluate`, the webhook's own call, on the policies
as the webhook parses them (:func:`mamori.policy.parse_policy`) and the namespace's labels; this
module only adds the reasons around it: which policies select the namespace (and, for those that
do not, which exemption or selector term leaves it out), which rules each one runs, and, for
every violation, the rule's demand as the fix. Policies are in the webhook's order (by name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mamori.engine import evaluate, unjudged_rules
from mamori.findings import Decision, Enforcement, Violation
from mamori.policy import Policy, PolicyError, parse_policy
from mamori.policy.model import NAMESPACE_NAME_LABEL
from mamori.policy.selector import Requirement
from mamori.rules import RULES
from mamori.rules.registry import ImageEvidence
from mamori.scans import ScanLookup
from mamori.workloads import WORKLOAD_KINDS, extract_workload

# Written by the operator on the pods it scans (mamori_operator.scanning.model; the core cannot
# import the operator, so the names are repeated here).
SCAN_ANNOTATIONS = ("mamori.io/scan-status", "mamori.io/scan-summary", "mamori.io/scanned-at")
RULES_DOC = "docs/rules.md"


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """What the operator last reported on a policy (its ``Ready`` condition)."""

    ready: str
    reason: str
    message: str
    stale: bool
    """True when the status is about an older generation of the spec."""


@dataclass(frozen=True, slots=True)
class PolicyView:
    """One policy and the object: selected or not, and why; what it runs and what it found."""

    name: str
    enforcement: Enforcement | None
    selected: bool
    reason: str
    rules: tuple[str, ...] = ()
    violations: tuple[Violation, ...] = ()
    advice: tuple[Violation, ...] = ()
    unjudged: tuple[str, ...] = ()
    """Rules it runs that could not be run here (scan rules without scan results)."""
    status: PolicyStatus | None = None
    invalid: str | None = None
    """Why the webhook cannot use this policy as stored; None when it is valid."""


@dataclass(frozen=True, slots=True)
class PodView:
    """One pod of a workload as it runs now: its phase, scan status and own verdict."""

    name: str
    phase: str
    scan: Mapping[str, str]
    allowed: bool
    violations: int


@dataclass(frozen=True, slots=True)
class Explanation:
    kind: str
    name: str
    namespace: str
    pod_spec: str | None
    """The field path of the pod spec that is judged; None for a kind that runs no pods."""
    namespace_labels: Mapping[str, str] | None
    """None when the namespace's labels could not be read (selectors then see its name only)."""
    policies: tuple[PolicyView, ...]
    decision: Decision | None
    pods: tuple[PodView, ...] = ()
    owner: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision is None or self.decision.allowed

    @property
    def exit_code(self) -> int:
        return 0 if self.allowed else 1


def explain(
    resource: Mapping[str, Any],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str] | None,
    policy_objects: Sequence[Mapping[str, Any]],
    scans: ScanLookup | None = None,
    pods: Sequence[Mapping[str, Any]] = (),
    notes: Sequence[str] = (),
) -> Explanation:
    """Explain the verdict on ``resource`` in ``namespace`` under the stored policies."""
    parsed = sorted((_parse(obj) for obj in policy_objects), key=lambda entry: entry[0])
    valid = [policy for _, policy, _ in parsed if isinstance(policy, Policy)]
    workload = extract_workload(resource)
    decision = evaluate(
        resource, valid, namespace=namespace, namespace_labels=namespace_labels, scans=scans
    )
    views = tuple(
        _view(name, policy, obj, namespace, namespace_labels, decision, scans)
        for name, policy, obj in parsed
    )
    kind = str(resource.get("kind") or "")
    return Explanation(
        kind=kind,
        name=_metadata(resource).get("name") or "",
        namespace=namespace,
        pod_spec=WORKLOAD_KINDS[kind].spec_path if workload is not None else None,
        namespace_labels=namespace_labels,
        policies=views,
        decision=decision,
        pods=tuple(_pod_view(pod, valid, namespace, namespace_labels, scans) for pod in pods),
        owner=_owner(resource),
        notes=tuple(notes),
    )


def selection(policy: Policy, namespace: str, labels: Mapping[str, str] | None) -> tuple[bool, str]:
    """Whether ``policy`` selects ``namespace`` (as the engine decides) and why, in words."""
    selected = policy.selects(namespace, labels)
    if policy.is_exempt(namespace):
        return selected, f"namespace {namespace} is in spec.exemptNamespaces"
    requirements = policy.namespace_selector.requirements
    if not requirements:
        return selected, "no spec.namespaceSelector: it selects every namespace not exempt"
    effective = {NAMESPACE_NAME_LABEL: namespace, **(labels or {})}
    if selected:
        terms = "; ".join(_term(requirement) for requirement in requirements)
        return selected, f"spec.namespaceSelector matches ({terms})"
    failed = [r for r in requirements if not r.matches(effective)]
    missing = "; ".join(f"{_term(r)}, but {_has(r.key, effective)}" for r in failed)
    return selected, f"spec.namespaceSelector does not match: {missing}"


def fix_for(violation: Violation) -> str:
    """What the rule demands, and where it is explained: the fix, beyond the message."""
    anchor = f"{RULES_DOC}#{violation.rule}"
    if violation.rule not in RULES:
        return anchor
    return f"{RULES.get(violation.rule).summary} ({anchor})"


def _parse(obj: Mapping[str, Any]) -> tuple[str, Policy | PolicyError, Mapping[str, Any]]:
    name = str(_metadata(obj).get("name") or "")
    try:
        return name, parse_policy(obj), obj
    except PolicyError as error:
        return name, error, obj


def _view(
    name: str,
    policy: Policy | PolicyError,
    obj: Mapping[str, Any],
    namespace: str,
    labels: Mapping[str, str] | None,
    decision: Decision | None,
    scans: ScanLookup | None,
) -> PolicyView:
    status = _status(obj)
    if isinstance(policy, PolicyError):
        reason = "its spec is invalid: the webhook keeps its last valid version, if any"
        return PolicyView(name, None, False, reason, status=status, invalid=str(policy))
    selected, reason = selection(policy, namespace, labels)
    if decision is None:
        selected, reason = False, "the object runs no pods: mamori judges pods and workloads"
    if not selected or decision is None:
        return PolicyView(name, policy.enforcement, False, reason, status=status)
    unjudged = unjudged_rules(policy, ImageEvidence(scans=scans))
    return PolicyView(
        name,
        policy.enforcement,
        True,
        reason,
        rules=tuple(rule.id for rule in policy.plan.rules),
        violations=tuple(v for v in decision.violations if v.policy == name),
        advice=tuple(v for v in decision.advice if v.policy == name),
        unjudged=unjudged,
        status=status,
    )


def _pod_view(
    pod: Mapping[str, Any],
    policies: Sequence[Policy],
    namespace: str,
    labels: Mapping[str, str] | None,
    scans: ScanLookup | None,
) -> PodView:
    metadata = _metadata(pod)
    annotations = metadata.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, Mapping) else None
    decision = evaluate(pod, policies, namespace=namespace, namespace_labels=labels, scans=scans)
    return PodView(
        name=str(metadata.get("name") or ""),
        phase=str(phase or "Unknown"),
        scan={key: str(annotations[key]) for key in SCAN_ANNOTATIONS if key in annotations},
        allowed=decision is None or decision.allowed,
        violations=0 if decision is None else len(decision.violations),
    )


def _status(obj: Mapping[str, Any]) -> PolicyStatus | None:
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    if not isinstance(conditions, list):
        return None
    ready = next(
        (c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Ready"), None
    )
    if ready is None:
        return None
    observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
    generation = _metadata(obj).get("generation")
    return PolicyStatus(
        ready=str(ready.get("status") or "Unknown"),
        reason=str(ready.get("reason") or ""),
        message=str(ready.get("message") or ""),
        stale=isinstance(generation, int) and observed != generation,
    )


def _owner(resource: Mapping[str, Any]) -> str | None:
    """``ReplicaSet/web-5d9c`` for an object a controller made: it is judged at its template."""
    owners = _metadata(resource).get("ownerReferences")
    for owner in owners if isinstance(owners, list) else ():
        if isinstance(owner, Mapping) and owner.get("controller") is True:
            return f"{owner.get('kind')}/{owner.get('name')}"
    return None


def _term(requirement: Requirement) -> str:
    values = ", ".join(sorted(requirement.values))
    if requirement.operator == "In" and len(requirement.values) == 1:
        return f"{requirement.key}={values}"
    return {
        "In": f"{requirement.key} in ({values})",
        "NotIn": f"{requirement.key} not in ({values})",
        "Exists": f"label {requirement.key} exists",
        "DoesNotExist": f"no label {requirement.key}",
    }[requirement.operator]


def _has(key: str, labels: Mapping[str, str]) -> str:
    if key in labels:
        return f"the namespace has {key}={labels[key]}"
    return f"the namespace has no label {key}"


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}
