"""ClusterSecurityPolicy status from what the operator knows: counts, conditions, stability."""

from __future__ import annotations

from typing import Any

from mamori_operator.handlers.policies import policy_record
from mamori_operator.network.reconciler import NetworkPolicyCount
from mamori_operator.scanning.scanner import ProviderProblem
from mamori_operator.state.cluster import (
    ClusterState,
    NamespaceRecord,
    PodRecord,
    PolicyRecord,
    encode_body,
)
from mamori_operator.status.policy_status import PolicyFacts, build_status

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T01:00:00Z"


def csp(**spec: Any) -> PolicyRecord:
    return policy_record(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "p", "uid": "u", "generation": 4},
            "spec": {"namespaceSelector": {"matchLabels": {"env": "prod"}}, **spec},
        }
    )


def pod(namespace: str, name: str, status: str | None = None) -> PodRecord:
    annotations = {"mamori.io/scan-status": status} if status else {}
    return PodRecord(namespace, name, "uid", "1", "Pod", name, (), annotations, encode_body({}))


NAMESPACES = [
    NamespaceRecord("a", {"env": "prod"}),
    NamespaceRecord("b", {"env": "prod"}),
    NamespaceRecord("gone", {"env": "prod"}, terminating=True),
    NamespaceRecord("dev", {"env": "dev"}),
]


def facts(record: PolicyRecord, **overrides: Any) -> PolicyFacts:
    values: dict[str, Any] = {
        "record": record,
        "namespaces": NAMESPACES,
        "managed_network_policies": 2,
        "network_errors": {},
        "pods": [
            pod("a", "x", "clean"),
            pod("a", "y", "vulnerable"),
            pod("b", "z"),
            pod("dev", "w", "clean"),
        ],
        "audits": {
            ("a", "y"): {"p": ("privileged", "run-as-non-root")},
            ("b", "z"): {"p": ("privileged",)},
            ("dev", "w"): {"p": ("privileged",)},
        },
        "provider_problems": [],
        "network_policies": NetworkPolicyCount(desired=2, in_place=2),
    }
    values.update(overrides)
    return PolicyFacts(**values)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_counts_and_offenders() -> None:
    status = build_status(
        facts(csp(networkPolicy={}, imageScan={"providers": ["ecr"]})), offenders=1, now=NOW
    )
    assert status["observedGeneration"] == 4
    assert status["namespaces"] == {"selected": 2, "exempt": 0}
    assert status["networkPolicies"] == {"managed": 2, "desired": 2, "inPlace": 2, "ready": "2/2"}
    assert status["pods"] == {
        "total": 3,
        "clean": 1,
        "vulnerable": 1,
        "pending": 1,
        "unscanned": 0,
        "error": 0,
    }
    assert status["violations"] == {
        "pods": 2,
        "byRule": {"privileged": 2, "run-as-non-root": 1},
        "offenders": [{"namespace": "a", "name": "y", "rules": ["privileged", "run-as-non-root"]}],
    }
    assert condition(status, "Ready")["status"] == "True"


def test_provider_failure_names_the_reason() -> None:
    problem = ProviderProblem("ecr", "AccessDenied", "AccessDeniedException: not authorized")
    status = build_status(
        facts(csp(imageScan={"providers": ["ecr"]}), provider_problems=[problem]),
        offenders=5,
        now=NOW,
    )
    scan = condition(status, "ScanProviderReady")
    assert (scan["status"], scan["reason"]) == ("False", "AccessDenied")
    assert "ecr: AccessDeniedException" in scan["message"]
    assert condition(status, "Ready")["reason"] == "ScanProviderNotReady"


def test_network_errors_make_the_policy_not_ready() -> None:
    status = build_status(
        facts(csp(networkPolicy={}), network_errors={"a": "forbidden"}), offenders=5, now=NOW
    )
    assert condition(status, "NetworkPoliciesReady")["reason"] == "ApplyFailed"
    assert condition(status, "Ready")["status"] == "False"


def test_without_sections_conditions_say_not_configured() -> None:
    status = build_status(facts(csp()), offenders=5, now=NOW)
    assert condition(status, "NetworkPoliciesReady")["reason"] == "NotConfigured"
    assert condition(status, "ScanProviderReady")["reason"] == "NotConfigured"
    assert status["pods"]["clean"] == 0  # no imageScan: scan counts stay zero


def test_invalid_spec() -> None:
    record = csp(imageScan={"providers": ["ecr"], "rescanInterval": "1s"})
    status = build_status(facts(record), offenders=5, now=NOW)
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.imageScan.rescanInterval" in ready["message"]


def test_transition_time_only_moves_with_the_status() -> None:
    record = csp()
    first = build_status(facts(record), offenders=5, now=NOW)
    settled = PolicyRecord(record.name, record.uid, record.generation, record.policy, None, first)
    assert build_status(facts(settled), offenders=5, now=LATER) == first
    failing = build_status(
        facts(settled, provider_problems=[ProviderProblem("ecr", "Throttled", "slow")]),
        offenders=5,
        now=LATER,
    )
    # no imageScan section: provider problems do not concern this policy
    assert failing == first


def test_network_policies_missing_from_the_cluster_make_the_status_false() -> None:
    # the case: 6 managed NetworkPolicies wanted, 3 deleted behind the watch's back
    status = build_status(
        facts(
            csp(networkPolicy={}),
            managed_network_policies=3,
            network_policies=NetworkPolicyCount(desired=6, in_place=3),
        ),
        offenders=5,
        now=NOW,
    )
    network = condition(status, "NetworkPoliciesReady")
    assert (network["status"], network["reason"]) == ("False", "Missing")
    assert "3 of 6" in network["message"]
    assert condition(status, "Ready")["reason"] == "NetworkPoliciesNotReady"
    assert status["networkPolicies"]["ready"] == "3/6"


def test_all_in_place_says_how_many_of_how_many() -> None:
    status = build_status(
        facts(csp(networkPolicy={}), network_policies=NetworkPolicyCount(desired=2, in_place=2)),
        offenders=5,
        now=NOW,
    )
    network = condition(status, "NetworkPoliciesReady")
    assert (network["status"], network["message"]) == ("True", "2 of 2 NetworkPolicies in place")


def test_invalid_edit_keeps_the_last_valid_spec_in_effect_and_says_so() -> None:
    state = ClusterState()
    state.set_policy(csp(networkPolicy={}, imageScan={"providers": ["ecr"]}))
    broken = policy_record(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "p", "uid": "u", "generation": 5},
            "spec": {
                "namespaceSelector": {"matchLabels": {"env": "prod"}},
                "networkPolicy": {"allowedEgressCIDRs": ["10.0.0.1/8"]},
            },
        }
    )
    state.set_policy(broken)
    record = state.policy_record("p")
    assert record is not None and record.policy is not None
    status = build_status(facts(record), offenders=5, now=NOW)
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.networkPolicy.allowedEgressCIDRs[0]" in ready["message"]
    assert "generation 4" in ready["message"]
    assert status["observedGeneration"] == 5
    # the last valid spec is still what counts, audits and scans
    assert status["namespaces"] == {"selected": 2, "exempt": 0}
    assert status["violations"]["pods"] == 2
    assert condition(status, "NetworkPoliciesReady")["status"] == "True"
