"""``kubectl mamori why``'s explanation: which policies select the object and why, what each
runs and finds, and the verdict, from stored objects alone (mamori/why/explain.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mamori.engine import evaluate
from mamori.findings import Enforcement
from mamori.policy import parse_policy
from mamori.why.explain import explain, fix_for, selection

NAMESPACE = "team-a"
RESTRICTED_POD_SPEC: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "image": "registry.example/app:1",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsUser": 1000,
            },
        }
    ],
}


def deployment(*, host_network: bool = False) -> dict[str, Any]:
    """A Deployment that passes restricted, or breaks exactly one rule (host-namespaces)."""
    spec = copy.deepcopy(RESTRICTED_POD_SPEC)
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec},
        },
    }


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": name, "generation": 1},
        "spec": spec,
    }


def by_env(value: str) -> dict[str, Any]:
    return {"matchLabels": {"env": value}}


SELECTION = [
    pytest.param({}, {}, True, "no spec.namespaceSelector: it selects every namespace not exempt",
                 id="no-selector-selects-all"),
    pytest.param({"exemptNamespaces": ["other"]}, {}, True,
                 "no spec.namespaceSelector: it selects every namespace not exempt",
                 id="exempt-list-without-this-namespace"),
    pytest.param({"exemptNamespaces": [NAMESPACE]}, {}, False,
                 f"namespace {NAMESPACE} is in spec.exemptNamespaces", id="exempt"),
    pytest.param({"exemptNamespaces": [NAMESPACE], "namespaceSelector": by_env("dev")},
                 {"env": "dev"}, False, f"namespace {NAMESPACE} is in spec.exemptNamespaces",
                 id="exempt-wins-over-a-matching-selector"),
    pytest.param({"namespaceSelector": by_env("dev")}, {"env": "dev"}, True,
                 "spec.namespaceSelector matches (env=dev)", id="selector-matches"),
    pytest.param({"namespaceSelector": by_env("prod")}, {"env": "dev"}, False,
                 "spec.namespaceSelector does not match: env=prod, but the namespace has env=dev",
                 id="selector-other-value"),
    pytest.param({"namespaceSelector": by_env("prod")}, {}, False,
                 "spec.namespaceSelector does not match: env=prod, but the namespace has no "
                 "label env", id="selector-label-missing"),
    pytest.param({"namespaceSelector": by_env("prod")}, None, False,
                 "spec.namespaceSelector does not match: env=prod, but the namespace has no "
                 "label env", id="labels-unknown"),
    pytest.param(
        {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [NAMESPACE, "b"]}
        ]}},
        None, True,
        f"spec.namespaceSelector matches (kubernetes.io/metadata.name in (b, {NAMESPACE}))",
        id="name-label-implied-when-labels-unknown"),
    pytest.param(
        {"namespaceSelector": {"matchExpressions": [
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
        ]}},
        {"env": "dev"}, False,
        "spec.namespaceSelector does not match: env not in (dev), but the namespace has env=dev; "
        "label team exists, but the namespace has no label team",
        id="every-failed-term-named"),
    pytest.param(
        {"namespaceSelector": {"matchExpressions": [
            {"key": "legacy", "operator": "DoesNotExist"},
        ]}},
        {"legacy": "yes"}, False,
        "spec.namespaceSelector does not match: no label legacy, but the namespace has legacy=yes",
        id="does-not-exist"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "labels", "selected", "reason"), SELECTION)
def test_selection_agrees_with_the_engine_and_says_why(
    spec: dict[str, Any], labels: dict[str, str] | None, selected: bool, reason: str
) -> None:
    parsed = parse_policy(policy("p", **spec))
    assert selection(parsed, NAMESPACE, labels) == (selected, reason)
    assert parsed.selects(NAMESPACE, labels) is selected


VERDICTS = [
    pytest.param("Enforce", True, False, 1, id="enforce-denies"),
    pytest.param("Warn", True, True, 0, id="warn-allows"),
    pytest.param("Audit", True, True, 0, id="audit-allows"),
    pytest.param("Enforce", False, True, 0, id="compliant-under-enforce"),
]


@pytest.mark.parametrize(("enforcement", "bad", "allowed", "exit_code"), VERDICTS)
def test_the_verdict_follows_the_selecting_policys_enforcement(
    enforcement: str, bad: bool, allowed: bool, exit_code: int
) -> None:
    explanation = explain(
        deployment(host_network=bad),
        namespace=NAMESPACE,
        namespace_labels={},
        policy_objects=[policy("only", enforcement=enforcement)],
    )
    assert (explanation.allowed, explanation.exit_code) == (allowed, exit_code)
    [view] = explanation.policies
    assert view.selected
    assert view.enforcement is Enforcement(enforcement)
    assert [(v.rule, v.field) for v in view.violations] == (
        [("host-namespaces", "spec.template.spec.hostNetwork")] if bad else []
    )
    assert {v.enforcement for v in view.violations} <= {Enforcement(enforcement)}


def test_several_policies_each_with_its_own_reason_rules_and_findings() -> None:
    objects = [
        policy("warn-all", enforcement="Warn"),
        policy("enforce-prod", namespaceSelector=by_env("prod")),
        policy("enforce-baseline-dev", podSecurity="baseline", namespaceSelector=by_env("dev")),
        policy("exempting", exemptNamespaces=[NAMESPACE]),
    ]
    resource = deployment(host_network=True)
    resource["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")
    explanation = explain(
        resource, namespace=NAMESPACE, namespace_labels={"env": "dev"}, policy_objects=objects
    )
    views = {view.name: view for view in explanation.policies}
    assert [view.name for view in explanation.policies] == sorted(views)  # the webhook's order
    assert {name for name, view in views.items() if view.selected} == {
        "warn-all",
        "enforce-baseline-dev",
    }
    assert views["enforce-prod"].reason.endswith("but the namespace has env=dev")
    assert views["exempting"].reason == f"namespace {NAMESPACE} is in spec.exemptNamespaces"
    assert not views["enforce-prod"].rules and not views["enforce-prod"].violations
    # restricted runs more rules than baseline; run-as-non-root is restricted only
    assert "run-as-non-root" in views["warn-all"].rules
    assert "run-as-non-root" not in views["enforce-baseline-dev"].rules
    assert {v.rule for v in views["warn-all"].violations} == {"host-namespaces", "run-as-non-root"}
    assert [v.rule for v in views["enforce-baseline-dev"].violations] == ["host-namespaces"]
    assert not explanation.allowed  # the baseline policy enforces
    engine = evaluate(
        resource,
        sorted((parse_policy(o) for o in objects), key=lambda p: p.name),  # as the webhook
        namespace=NAMESPACE,
        namespace_labels={"env": "dev"},
    )
    assert explanation.decision == engine


def test_a_policy_that_does_not_select_the_namespace_cannot_deny() -> None:
    explanation = explain(
        deployment(host_network=True),
        namespace=NAMESPACE,
        namespace_labels={"env": "dev"},
        policy_objects=[policy("prod", namespaceSelector=by_env("prod"))],
    )
    assert explanation.allowed and explanation.exit_code == 0
    assert not explanation.policies[0].selected


@pytest.mark.parametrize(
    ("resource", "pod_spec"),
    [
        pytest.param(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
            "spec",
            id="pod",
        ),
        pytest.param(
            {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {}},
            "spec.jobTemplate.spec.template.spec",
            id="cronjob",
        ),
        pytest.param(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
            None,
            id="configmap-runs-no-pods",
        ),
    ],
)
def test_the_kind_decides_what_is_judged(resource: dict[str, Any], pod_spec: str | None) -> None:
    explanation = explain(
        resource, namespace=NAMESPACE, namespace_labels={}, policy_objects=[policy("all")]
    )
    assert explanation.pod_spec == pod_spec
    [view] = explanation.policies
    assert view.selected is (pod_spec is not None)
    if pod_spec is None:
        assert view.reason.startswith("the object runs no pods")
        assert explanation.decision is None and explanation.exit_code == 0


def test_an_invalid_policy_is_shown_as_skipped_and_the_others_still_judge() -> None:
    broken = policy("broken", enforcement="Sometimes")
    explanation = explain(
        deployment(host_network=True),
        namespace=NAMESPACE,
        namespace_labels={},
        policy_objects=[broken, policy("good")],
    )
    views = {view.name: view for view in explanation.policies}
    assert views["broken"].invalid is not None and "spec.enforcement" in views["broken"].invalid
    assert not views["broken"].selected and views["broken"].enforcement is None
    assert views["good"].selected and views["good"].violations
    assert explanation.exit_code == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(None, None, id="no-status"),
        pytest.param(
            {"observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": "True", "reason": "Active", "message": "enforcing"}]},
            ("True", "Active", "enforcing", False),
            id="ready-current",
        ),
        pytest.param(
            {"observedGeneration": 0, "conditions": [
                {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "x"}]},
            ("False", "InvalidSpec", "x", True),
            id="stale-generation",
        ),
    ],
)  # fmt: skip
def test_the_operators_status_is_shown(
    status: dict[str, Any] | None, expected: tuple[str, str, str, bool] | None
) -> None:
    obj = policy("p")
    if status is not None:
        obj["status"] = status
    [view] = explain(
        deployment(), namespace=NAMESPACE, namespace_labels={}, policy_objects=[obj]
    ).policies
    got = view.status
    assert (None if got is None else (got.ready, got.reason, got.message, got.stale)) == expected


def test_pods_show_their_scan_annotations_and_their_own_verdict() -> None:
    good = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "annotations": {"mamori.io/scan-status": "clean", "other": "x"},
        },
        "spec": RESTRICTED_POD_SPEC,
        "status": {"phase": "Running"},
    }
    old = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0"},
        "spec": {**RESTRICTED_POD_SPEC, "hostPID": True},
    }
    explanation = explain(
        deployment(),
        namespace=NAMESPACE,
        namespace_labels={},
        policy_objects=[policy("p")],
        pods=[good, old],
    )
    assert [(p.name, p.phase, dict(p.scan), p.allowed, p.violations) for p in explanation.pods] == [
        ("web-1", "Running", {"mamori.io/scan-status": "clean"}, True, 0),
        ("web-0", "Unknown", {}, False, 1),
    ]
    assert explanation.allowed  # the pods' state does not change the workload's verdict


def test_scan_rules_without_scan_results_are_named_as_not_run() -> None:
    objects = [policy("scans", vulnerabilities={}), policy("plain")]
    views = {
        v.name: v
        for v in explain(
            deployment(), namespace=NAMESPACE, namespace_labels={}, policy_objects=objects
        ).policies
    }
    assert views["scans"].unjudged == ("image-vulnerabilities",)
    assert views["plain"].unjudged == ()


def test_a_controlled_object_names_its_controller() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "ownerReferences": [
                {"kind": "Node", "name": "n", "controller": False},
                {"kind": "ReplicaSet", "name": "web-5d9", "controller": True},
            ],
        },
        "spec": RESTRICTED_POD_SPEC,
    }
    explanation = explain(pod, namespace=NAMESPACE, namespace_labels={}, policy_objects=[])
    assert explanation.owner == "ReplicaSet/web-5d9"
    assert explanation.policies == () and explanation.allowed


def test_the_fix_is_the_rules_demand_and_its_documentation() -> None:
    explanation = explain(
        deployment(host_network=True),
        namespace=NAMESPACE,
        namespace_labels={},
        policy_objects=[policy("p")],
    )
    [violation] = explanation.policies[0].violations
    assert fix_for(violation) == (
        "no hostNetwork, hostPID or hostIPC (docs/rules.md#host-namespaces)"
    )
