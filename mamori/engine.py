"""One verdict for one resource: every selecting policy, every rule, all findings at once.

The webhook, the operator's background audit and ``mamori check`` all call :func:`evaluate`, so
a pod gets the same answer from each. Pure: no I/O, no clock, no global state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mamori.findings import Decision, Violation
from mamori.podspec import PodContext
from mamori.policy.model import Policy
from mamori.rules import RULES, Level, Rule, RuleSettings
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
        applied.append(policy.name)
        for rule in active_rules(policy.rules):
            for finding in rule.check(pod, policy.rules):
                violation = Violation(
                    rule=rule.id,
                    policy=policy.name,
                    enforcement=policy.enforcement,
                    field=finding.field,
                    message=finding.message,
                    container=finding.container,
                    advisory=finding.advisory,
                )
                (advice if finding.advisory else violations).append(violation)
    return Decision(
        violations=tuple(sorted(set(violations), key=Violation.sort_key)),
        advice=tuple(sorted(set(advice), key=Violation.sort_key)),
        policies=tuple(applied),
    )


def active_rules(settings: RuleSettings) -> tuple[Rule, ...]:
    """The rules a policy's settings turn on (image rules decide for themselves)."""
    level = settings.pod_security
    return tuple(
        rule
        for rule in RULES
        if rule.level is Level.IMAGE or (level is not None and rule.level <= level)
    )
