"""Policies compiled at parse time: the plan runs what the registry would, and nothing changes.

The engine used to filter the rule registry for every policy on every pod; it now walks the
:class:`~mamori.rules.plan.RulePlan` each policy carries. These tests hold the plan to the old
behaviour: same decisions on every fixture under every kind of policy, rules left out only when
they could not have found anything, and policies that still copy and pickle like values.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from mamori.engine import evaluate
from mamori.findings import Decision, Violation
from mamori.policy import Policy, parse_policy
from mamori.rules import RULES, Level
from mamori.rules.plan import RulePlan
from mamori.workloads import extract_workload

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPECS: dict[str, dict[str, Any]] = {
    "restricted": {},
    "baseline": {"podSecurity": "baseline"},
    "privileged": {"podSecurity": "privileged"},
    "registries": {"trustedRegistries": ["ghcr.io/acme", "*.dkr.ecr.us-east-1.amazonaws.com"]},
    "digests": {"podSecurity": "baseline", "requireImageDigest": True},
    "warn-all": {
        "enforcement": "Warn",
        "trustedRegistries": ["registry.k8s.io", "docker.io/library"],
        "requireImageDigest": True,
    },
}


def policy(name: str) -> Policy:
    document = {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": name},
        "spec": SPECS[name],
    }
    return parse_policy(document)


def fixture_documents() -> list[Any]:
    return [
        pytest.param(yaml.safe_load(path.read_text(encoding="utf-8")), id=str(path.stem))
        for path in sorted(FIXTURES.glob("*/*/*.yaml"))
        if path.parent.name in ("pass", "fail")
    ]


def unplanned(resource: dict[str, Any], policies: Sequence[Policy]) -> Decision | None:
    """The engine as it was: every registered rule of the policy's level, per pod."""
    workload = extract_workload(resource)
    if workload is None:
        return None
    violations: list[Violation] = []
    advice: list[Violation] = []
    for chosen in policies:
        level = chosen.rules.pod_security
        for rule in RULES:
            if rule.level is not Level.IMAGE and (level is None or rule.level > level):
                continue
            for finding in rule.check(workload.pod, chosen.rules):
                violation = Violation(
                    rule=rule.id,
                    policy=chosen.name,
                    enforcement=chosen.enforcement,
                    field=finding.field,
                    message=finding.message,
                    container=finding.container,
                    advisory=finding.advisory,
                )
                (advice if finding.advisory else violations).append(violation)
    return Decision(
        violations=tuple(sorted(set(violations), key=Violation.sort_key)),
        advice=tuple(sorted(set(advice), key=Violation.sort_key)),
        policies=tuple(chosen.name for chosen in policies),
    )


@pytest.mark.parametrize("document", fixture_documents())
def test_planned_engine_decides_like_the_registry_walk(document: dict[str, Any]) -> None:
    policies = [policy(name) for name in SPECS]
    for chosen in policies:
        assert evaluate(document, [chosen]) == unplanned(document, [chosen]), chosen.name
    assert evaluate(document, policies) == unplanned(document, policies)


@pytest.mark.parametrize(
    ("name", "left_out"),
    [
        pytest.param("restricted", {"trusted-registry", "image-digest"}, id="restricted"),
        pytest.param("registries", {"image-digest"}, id="registries-only"),
        pytest.param("digests", {"trusted-registry"}, id="digests-only"),
        pytest.param("warn-all", set(), id="everything"),
    ],
)
def test_image_rules_that_cannot_fire_are_left_out(name: str, left_out: set[str]) -> None:
    chosen = policy(name)
    planned = {rule.id for rule in chosen.plan.rules}
    image_rules = {rule.id for rule in RULES if rule.level is Level.IMAGE}
    # The registry and digest rules by name; any other image rule by its own ``applies`` (a
    # rule behind a policy switch is left out while the switch is off).
    switched_off = {
        rule.id
        for rule in RULES
        if rule.level is Level.IMAGE
        and rule.id not in {"trusted-registry", "image-digest"}
        and not rule.applies(chosen.rules)
    }
    assert image_rules - planned == left_out | switched_off
    assert [rule_id for rule_id, _ in policy(name).plan.checks] == [
        rule.id for rule in policy(name).plan.rules
    ]


def test_privileged_plan_holds_only_the_image_rules_that_apply() -> None:
    assert {rule.id for rule in policy("privileged").plan.rules} == {
        "image-reference",
        "pod-structure",
    }


def test_plan_keeps_registration_order_and_levels() -> None:
    plan = RulePlan.compile(policy("baseline").rules)
    order = RULES.ids()
    assert [rule.id for rule in plan.rules] == sorted(
        (rule.id for rule in plan.rules), key=order.index
    )
    assert all(rule.level in (Level.BASELINE, Level.IMAGE) for rule in plan.rules)


@pytest.mark.parametrize("name", list(SPECS))
def test_compiled_policy_copies_and_pickles_like_a_value(name: str) -> None:
    original = policy(name)
    for copied in (copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
        assert copied == original
        assert [rule.id for rule in copied.plan.rules] == [rule.id for rule in original.plan.rules]
        assert copied.rules.registries.listing == original.rules.registries.listing


def test_namespace_selection_is_compiled_but_still_asked() -> None:
    open_policy, exempting = (
        policy("restricted"),
        parse_policy(
            {
                "apiVersion": "mamori.io/v1alpha1",
                "kind": "ClusterSecurityPolicy",
                "metadata": {"name": "x"},
                "spec": {"exemptNamespaces": ["kube-system"]},
            }
        ),
    )
    assert open_policy.selects_all and not exempting.selects_all
    assert open_policy.selects("kube-system") and not exempting.selects("kube-system")
