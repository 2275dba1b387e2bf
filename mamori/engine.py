"""One verdict for one resource: every selecting policy, every rule, all findings at once.

The webhook, the operator's background audit and ``mamori check`` all call :func:`evaluate`, so
a pod gets the same answer from each. Pure: no I/O, no clock, no global state.

Every admission pays for this, so the work that depends only on a policy is done when the
policy is built (its :class:`~mamori.rules.plan.RulePlan`: which rules run, with which
settings), the work that depends only on the pod is done once per pod
(:class:`~mamori.podspec.PodContext`: containers, scopes, parsed images), and the loop here
only calls the planned checks and attributes what they find.

Rules that judge evidence from outside the manifest need it as input: scan results
(``image-vulnerabilities``: a :class:`~mamori.scans.ScanLookup`, the webhook's watched index)
and registries (``image-signatures``, and tag resolution: a
:class:`~mamori.supplychain.lookup.RegistryLookup`). A caller without them (``mamori check``
offline) passes none, and those rules find nothing; :func:`unjudged_rules` tells a caller what
that left unjudged. A policy without ``spec.vulnerabilities`` or ``spec.imageSignatures`` plans
no such rule, so its pods pay nothing for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mamori.findings import Decision, Enforcement, Finding, Violation
from mamori.podspec import PodContext
from mamori.policy.model import Policy
from mamori.rules import Rule, RuleSettings
from mamori.rules.image_vulnerabilities import RESOLVE_TAGS
from mamori.rules.plan import RulePlan
from mamori.rules.registry import ImageEvidence, Needs
from mamori.workloads import extract_workload

if TYPE_CHECKING:  # annotations only: `mamori check` of a plain manifest never loads them
    from mamori.scans import ScanLookup
    from mamori.supplychain.lookup import RegistryLookup


def evaluate(
    resource: Mapping[str, Any],
    policies: Sequence[Policy],
    *,
    namespace: str | None = None,
    namespace_labels: Mapping[str, str] | None = None,
    scans: ScanLookup | None = None,
    registry: RegistryLookup | None = None,
) -> Decision | None:
    """Judge a workload object; None when it is not a kind that runs pods.

    ``namespace`` overrides the object's own (the admission request knows it even when the
    manifest omits it). ``scans``: where image scan results come from; ``registry``: what
    registries say about tags and signatures; None skips what needs them.
    """
    workload = extract_workload(resource)
    if workload is None:
        return None
    return evaluate_pod(
        workload.pod,
        policies,
        namespace=namespace if namespace is not None else workload.namespace,
        namespace_labels=namespace_labels,
        scans=scans,
        registry=registry,
    )


def evaluate_pod(
    pod: PodContext,
    policies: Sequence[Policy],
    *,
    namespace: str | None = None,
    namespace_labels: Mapping[str, str] | None = None,
    scans: ScanLookup | None = None,
    registry: RegistryLookup | None = None,
) -> Decision:
    """Judge one pod spec against every policy that selects its namespace."""
    evidence = None if scans is None and registry is None else ImageEvidence(scans, registry)
    violations: list[Violation] = []
    advice: list[Violation] = []
    applied: list[str] = []
    for policy in policies:
        if not policy.selects(namespace, namespace_labels):
            continue
        name, enforcement, plan = policy.name, policy.enforcement, policy.plan
        applied.append(name)
        settings = plan.settings
        for rule_id, check in plan.checks:
            findings = check(pod, settings)
            if findings:
                _attribute(findings, rule_id, name, enforcement, violations, advice)
        if plan.evidence_checks and evidence is not None:
            for rule_id, evidence_check in plan.evidence_checks:
                findings = evidence_check(pod, settings, evidence)
                if findings:
                    _attribute(findings, rule_id, name, enforcement, violations, advice)
    return Decision(_in_order(violations), _in_order(advice), tuple(applied))


def _attribute(
    findings: Sequence[Finding],
    rule_id: str,
    policy: str,
    enforcement: Enforcement,
    violations: list[Violation],
    advice: list[Violation],
) -> None:
    """File each finding as a violation or advice of ``rule_id`` in ``policy``."""
    for finding in findings:
        violation = Violation(
            rule=rule_id,
            policy=policy,
            enforcement=enforcement,
            field=finding.field,
            message=finding.message,
            container=finding.container,
            advisory=finding.advisory,
        )
        (advice if finding.advisory else violations).append(violation)


def uses_scans(policies: Sequence[Policy]) -> bool:
    """True when some policy runs a rule that judges scan results (``spec.vulnerabilities``):
    without a scan lookup, those rules are skipped and a caller should say so."""
    return any(Needs.SCANS in policy.plan.needs for policy in policies)


def uses_registry(policies: Sequence[Policy]) -> bool:
    """True when some policy asks registries: a rule that needs them (``spec.imageSignatures``)
    or scans judged by the digest a tag points to (``resolveImageTags``)."""
    return any(
        Needs.REGISTRY in policy.plan.needs
        or (policy.rules.vulnerabilities is not None and policy.rules.switched_on(RESOLVE_TAGS))
        for policy in policies
    )


def unjudged_rules(policy: Policy, evidence: ImageEvidence) -> tuple[str, ...]:
    """IDs of ``policy``'s rules that judged nothing for lack of evidence they need."""
    return tuple(
        rule.id
        for rule in policy.plan.rules
        if rule.needs and not any(evidence.has(need) for need in rule.needs)
    )


def _in_order(found: list[Violation]) -> tuple[Violation, ...]:
    """Duplicates dropped, in the stable order of :meth:`Violation.sort_key`."""
    if not found:
        return ()
    return tuple(sorted(set(found), key=Violation.sort_key))


def active_rules(settings: RuleSettings) -> tuple[Rule, ...]:
    """The rules a policy's settings turn on (what its :class:`RulePlan` runs on every pod)."""
    return RulePlan.compile(settings).rules
