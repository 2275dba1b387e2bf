"""One verdict for one resource: every selecting policy, every rule, all findings at once.

The webhook, the operator's background audit and ``mamori check`` all call :func:`evaluate`, so
a pod gets the same answer from each. Pure: no I/O, no clock, no global state.

Every admission pays for this, so the work that depends only on a policy is done when the
policy is built (its :class:`~mamori.rules.plan.RulePlan`: which rules run, with which
settings), the work that depends only on the pod is done once per pod
(:class:`~mamori.podspec.PodContext`: containers, scopes, parsed images), and the loop here
only calls the planned checks and attributes what they find.

Rules that judge image scan results (``image-vulnerabilities``) need the scans as input: the
caller passes a :class:`~mamori.scans.ScanLookup` (the webhook its watched index), or none
(``mamori check`` offline), and then those rules are not run; :func:`uses_scans` tells a caller
whether that left something unjudged. A policy without ``spec.vulnerabilities`` plans no such
rule, so its pods pay nothing for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mamori.findings import Decision, Enforcement, Finding, Violation
from mamori.podspec import PodContext
from mamori.policy.model import Policy
from mamori.rules import Rule, RuleSettings
from mamori.rules.plan import RulePlan
from mamori.scans import ScanLookup
from mamori.workloads import extract_workload


def evaluate(
    resource: Mapping[str, Any],
    policies: Sequence[Policy],
    *,
    namespace: str | None = None,
    namespace_labels: Mapping[str, str] | None = None,
    scans: ScanLookup | None = None,
) -> Decision | None:
    """Judge a workload object; None when it is not a kind that runs pods.

    ``namespace`` overrides the object's own (the admission request knows it even when the
    manifest omits it). ``scans``: where image scan results come from; None skips the rules
    that need them.
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
    )


def evaluate_pod(
    pod: PodContext,
    policies: Sequence[Policy],
    *,
    namespace: str | None = None,
    namespace_labels: Mapping[str, str] | None = None,
    scans: ScanLookup | None = None,
) -> Decision:
    """Judge one pod spec against every policy that selects its namespace."""
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
        if plan.scan_checks and scans is not None:
            for rule_id, scan_check in plan.scan_checks:
                findings = scan_check(pod, settings, scans)
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
    return any(policy.plan.scan_checks for policy in policies)


def _in_order(found: list[Violation]) -> tuple[Violation, ...]:
    """Duplicates dropped, in the stable order of :meth:`Violation.sort_key`."""
    if not found:
        return ()
    return tuple(sorted(set(found), key=Violation.sort_key))


def active_rules(settings: RuleSettings) -> tuple[Rule, ...]:
    """The rules a policy's settings turn on (what its :class:`RulePlan` runs on every pod)."""
    return RulePlan.compile(settings).rules
