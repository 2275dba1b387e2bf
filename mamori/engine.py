"""One verdict for one resource: every selecting policy, every rule, all findings at once.

The webhook, the operator's background audit and ``mamori check`` all call :func:`evaluate`, so
a pod gets the same answer from each. Pure: no I/O, no clock, no global state.

Every admission pays for this, so the work that depends only on a policy is done when the
policy is built (its :class:`~mamori.rules.plan.RulePlan`: which rules run, with which
settings), the work that depends only on the pod is done once per pod
(:class:`~mamori.podspec.PodContext`: containers, scopes, parsed images), and the loop here
only calls the planned checks and attributes what they find.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mamori.findings import Decision, Violation
from mamori.podspec import PodContext
from mamori.policy.model import Policy
from mamori.rules import Rule, RuleSettings
from mamori.rules.plan import RulePlan
from mamori.workloads import extract_workload


def evaluate(
    resource: Mapping[str, Any],
    policies: Sequence[Policy],
    *,
    namespace: str | None = None,
    namespace_labels: Mapping[str, str] | None = None,
) -> Decision | None:
    """Judge a workload object; None when it is not a kind that runs pods.

    ``namespace`` overrides the object's own (the admission request knows it even when the
    manifest omits it).
    """
    workload = extract_workload(resource)
    if workload is None:
        return None
    return evaluate_pod(
        workload.pod,
        policies,
        namespace=namespace if namespace is not None else workload.namespace,
        namespace_labels=namespace_labels,
    )


def evaluate_pod(
    pod: PodContext,
    policies: Sequence[Policy],
    *,
    namespace: str | None = None,
    namespace_labels: Mapping[str, str] | None = None,
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
            if not findings:
                continue
            for finding in findings:
                violation = Violation(
                    rule=rule_id,
                    policy=name,
                    enforcement=enforcement,
                    field=finding.field,
                    message=finding.message,
                    container=finding.container,
                    advisory=finding.advisory,
                )
                (advice if finding.advisory else violations).append(violation)
    return Decision(_in_order(violations), _in_order(advice), tuple(applied))


def _in_order(found: list[Violation]) -> tuple[Violation, ...]:
    """Duplicates dropped, in the stable order of :meth:`Violation.sort_key`."""
    if not found:
        return ()
    return tuple(sorted(set(found), key=Violation.sort_key))


def active_rules(settings: RuleSettings) -> tuple[Rule, ...]:
    """The rules a policy's settings turn on (what its :class:`RulePlan` runs on every pod)."""
    return RulePlan.compile(settings).rules
