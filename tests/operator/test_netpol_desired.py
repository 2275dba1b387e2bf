"""Which NetworkPolicies a namespace should have, and when an existing one needs no write."""

from __future__ import annotations

from typing import Any

from mamori_operator.handlers.policies import policy_record
from mamori_operator.network.reconciler import (
    POLICY_LABEL,
    desired_network_policies,
    matches,
    network_policy_name,
    normalize,
    policy_label,
    record_from_object,
)
from mamori_operator.state.cluster import NamespaceRecord, PolicyRecord


def csp(name: str, **spec: Any) -> PolicyRecord:
    return policy_record(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 3},
            "spec": spec,
        }
    )


TEAM = NamespaceRecord("shop", {"team": "a"})


def test_one_network_policy_per_selecting_policy() -> None:
    records = [
        csp("deny-all", networkPolicy={}),
        csp("other-team", networkPolicy={}, namespaceSelector={"matchLabels": {"team": "b"}}),
        csp("exempting", networkPolicy={}, exemptNamespaces=["shop"]),
        csp("no-section"),
        csp("nothing-to-do", networkPolicy={"defaultDeny": [], "blockInstanceMetadata": False}),
    ]
    desired = desired_network_policies(records, TEAM)
    assert list(desired) == ["mamori-deny-all"]
    record, manifest = desired["mamori-deny-all"]
    assert record.name == "deny-all"
    assert manifest["metadata"]["namespace"] == "shop"
    assert manifest["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "mamori",
        POLICY_LABEL: "deny-all",
    }
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "name": "deny-all",
            "uid": "uid-deny-all",
        }
    ]
    assert manifest["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_invalid_policy_wants_nothing() -> None:
    broken = csp("broken", networkPolicy={"defaultDeny": ["Sideways"]})
    assert broken.policy is None
    assert "spec.networkPolicy.defaultDeny[0]" in (broken.error or "")
    assert desired_network_policies([broken], TEAM) == {}


def server_copy(manifest: dict[str, Any], **spec_changes: Any) -> dict[str, Any]:
    """What the API server hands back: same spec plus fields it adds, empty lists dropped."""
    metadata = dict(
        manifest["metadata"],
        resourceVersion="9",
        labels={**manifest["metadata"]["labels"], "extra": "x"},
    )
    return {"metadata": metadata, "spec": {**manifest["spec"], **spec_changes}}


def test_matches_ignores_server_noise_but_not_edits() -> None:
    _, manifest = desired_network_policies([csp("p", networkPolicy={})], TEAM)["mamori-p"]
    assert matches(record_from_object(server_copy(manifest)), manifest)
    assert matches(
        record_from_object(server_copy(manifest, ingress=manifest["spec"]["ingress"])), manifest
    )
    edited = server_copy(manifest, ingress=[{"from": [{"namespaceSelector": {}}]}])
    assert not matches(record_from_object(edited), manifest)
    relabelled = server_copy(manifest)
    relabelled["metadata"]["labels"][POLICY_LABEL] = "someone-else"
    assert not matches(record_from_object(relabelled), manifest)


def test_normalize_keeps_select_all_but_drops_empty_lists() -> None:
    assert normalize({"podSelector": {}, "ingress": [], "x": None}) == {"podSelector": {}}


def test_long_names_fit_label_and_name_limits() -> None:
    name = "p" * 240
    assert len(policy_label(name)) == 63
    assert policy_label(name) != policy_label("p" * 239)
    assert len(network_policy_name(name)) <= 253
    assert network_policy_name("short") == "mamori-short"
