"""The engine: every selecting policy, every rule, one stable verdict."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mamori.engine import active_rules, evaluate
from mamori.findings import Enforcement
from mamori.policy import parse_policy
from mamori.rules import RULES, Level, RuleSettings

RESTRICTED_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "ok", "namespace": "shop"},
    "spec": {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "app",
                "image": "ghcr.io/acme/app@sha256:" + "a" * 64,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    },
}


def policy(name: str = "p", **spec: Any) -> Any:
    return parse_policy(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def root_pod() -> dict[str, Any]:
    pod = copy.deepcopy(RESTRICTED_POD)
    pod["spec"]["securityContext"] = {"runAsUser": 0}
    return pod


def test_registry_holds_every_fixed_rule_id() -> None:
    fixed = {
        "host-namespaces", "privileged", "capabilities", "host-path-volumes", "host-ports",
        "apparmor-profile", "selinux-options", "proc-mount", "seccomp-profile", "sysctls",
        "host-probes", "windows-host-process", "restricted-volumes",
        "allow-privilege-escalation", "run-as-non-root", "run-as-user",
        "trusted-registry", "image-digest",
    }  # fmt: skip
    assert fixed <= set(RULES.ids())


def test_compliant_pod_is_allowed_with_no_findings() -> None:
    decision = evaluate(RESTRICTED_POD, [policy(trustedRegistries=["ghcr.io/acme"])])
    assert decision is not None
    assert decision.allowed
    assert decision.violations == ()
    assert decision.policies == ("p",)


def test_all_violations_at_once_in_stable_order() -> None:
    first = evaluate(root_pod(), [policy()])
    second = evaluate(root_pod(), [policy()])
    assert first is not None and second is not None
    assert not first.allowed
    assert first.violations == second.violations
    rules = [v.rule for v in first.violations]
    assert rules == sorted(rules)
    assert {"run-as-non-root", "run-as-user", "seccomp-profile"} <= set(rules)


def test_every_selecting_policy_applies_and_names_itself() -> None:
    strict = policy("strict")
    registries = policy("registries", podSecurity="privileged", trustedRegistries=["quay.io"])
    decision = evaluate(RESTRICTED_POD, [strict, registries])
    assert decision is not None
    assert not decision.allowed
    assert [(v.policy, v.rule) for v in decision.denials] == [("registries", "trusted-registry")]


@pytest.mark.parametrize(
    ("enforcement", "allowed", "bucket"),
    [
        pytest.param("Enforce", False, "denials", id="enforce-denies"),
        pytest.param("Warn", True, "warnings", id="warn-allows-with-warnings"),
        pytest.param("Audit", True, "audits", id="audit-allows-and-records"),
    ],
)
def test_enforcement_modes(enforcement: str, allowed: bool, bucket: str) -> None:
    decision = evaluate(root_pod(), [policy(enforcement=enforcement)])
    assert decision is not None
    assert decision.allowed is allowed
    assert getattr(decision, bucket)
    assert {v.enforcement for v in decision.violations} == {Enforcement(enforcement)}


def test_warn_and_enforce_policies_mix() -> None:
    decision = evaluate(
        root_pod(),
        [policy("soft", enforcement="Warn"), policy("hard", podSecurity="baseline")],
    )
    assert decision is not None
    assert decision.allowed  # root is allowed by baseline; only restricted (Warn) objects
    assert decision.warnings and not decision.denials


def test_exempt_and_unselected_namespaces_are_not_judged() -> None:
    exempt = policy(exemptNamespaces=["shop"])
    other = policy(namespaceSelector={"matchLabels": {"team": "payments"}})
    for chosen in (exempt, other):
        decision = evaluate(root_pod(), [chosen])
        assert decision is not None
        assert decision.allowed and decision.policies == ()
    labelled = evaluate(root_pod(), [other], namespace_labels={"team": "payments"})
    assert labelled is not None and not labelled.allowed


def test_request_namespace_overrides_the_manifest() -> None:
    decision = evaluate(root_pod(), [policy(exemptNamespaces=["shop"])], namespace="other")
    assert decision is not None and not decision.allowed


def test_privileged_level_runs_only_image_rules() -> None:
    rules = active_rules(RuleSettings(pod_security=None))
    assert rules and {r.level for r in rules} == {Level.IMAGE}
    baseline = {r.level for r in active_rules(RuleSettings(pod_security=Level.BASELINE))}
    assert Level.RESTRICTED not in baseline and Level.BASELINE in baseline


def test_not_a_workload_returns_none() -> None:
    assert evaluate({"apiVersion": "v1", "kind": "Secret"}, [policy()]) is None


def test_advice_never_denies() -> None:
    pod = copy.deepcopy(RESTRICTED_POD)
    del pod["spec"]["securityContext"]["runAsUser"]
    decision = evaluate(pod, [policy()])
    assert decision is not None
    assert decision.allowed
    assert [v.rule for v in decision.advice] == ["run-as-non-root"]
    assert "numeric" in decision.advice[0].message


def pod_with(**spec_changes: Any) -> dict[str, Any]:
    pod = copy.deepcopy(RESTRICTED_POD)
    pod["spec"].update(spec_changes)
    return pod


CONTAINER = RESTRICTED_POD["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        pytest.param(pod_with(containers="x"), "spec.containers", id="containers-string"),
        pytest.param(
            pod_with(containers={"name": "a", "image": "nginx", "securityContext": {}}),
            "spec.containers",
            id="containers-mapping",
        ),
        pytest.param(pod_with(containers=[CONTAINER, "x"]), "spec.containers[1]", id="item-string"),
        pytest.param(pod_with(initContainers="x"), "spec.initContainers", id="init-string"),
        pytest.param(
            pod_with(ephemeralContainers={"name": "d"}),
            "spec.ephemeralContainers",
            id="ephemeral-mapping",
        ),
        pytest.param(
            {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": "x"}},
            "spec.template",
            id="template-string",
        ),
        pytest.param(
            {"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": ["x"]}},
            "spec.jobTemplate",
            id="job-template-list",
        ),
        pytest.param(
            {"apiVersion": "v1", "kind": "PodTemplate", "template": {"spec": [CONTAINER]}},
            "template.spec",
            id="pod-spec-list",
        ),
    ],
)
@pytest.mark.parametrize("level", ["restricted", "privileged"])
def test_malformed_container_lists_fail_closed_at_every_level(
    resource: dict[str, Any], field: str, level: str
) -> None:
    decision = evaluate(resource, [policy(podSecurity=level)])
    assert decision is not None
    assert not decision.allowed
    found = [v for v in decision.violations if v.rule == "pod-structure"]
    assert [v.field for v in found] == [field]
    assert found[0].message.startswith(f"{field.rsplit('.', 1)[-1]} must be ")
    assert "kubectl explain" in found[0].message
