"""Managed NetworkPolicies on the real API server: create, update, repair, remove, leave alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from mamori_operator.services import Services
from tests.integration.operator_support import (
    Cluster,
    condition,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration
MANAGED = "app.kubernetes.io/managed-by=mamori"


@pytest.fixture
def scope(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """A label that only this test's namespaces carry, and cleanup of what the test made."""
    made: dict[str, Any] = {"label": unique("t"), "namespaces": [], "policies": []}
    yield made
    for name in made["policies"]:
        cluster.delete_policy(name)
    for name in made["namespaces"]:
        cluster.delete_namespace(name)


def namespace(cluster: Cluster, scope: dict[str, Any], *, selected: bool = True) -> str:
    name = unique("np")
    labels = {"mamori-test": scope["label"]} if selected else {}
    cluster.create_namespace(name, labels)
    scope["namespaces"].append(name)
    return name


def policy(cluster: Cluster, scope: dict[str, Any], **spec: Any) -> str:
    name = scope.get("policy_name") or unique("csp")
    scope["policy_name"] = name
    if name not in scope["policies"]:
        scope["policies"].append(name)
    spec.setdefault("namespaceSelector", {"matchLabels": {"mamori-test": scope["label"]}})
    cluster.apply_policy(name, spec)
    return name


def managed(cluster: Cluster, namespace: str, scope: dict[str, Any]) -> dict[str, Any]:
    """This test's policy's managed NetworkPolicies (other tests' policies may be around)."""
    selector = f"{MANAGED},mamori.io/policy={scope.get('policy_name', '-')}"
    items = cluster.net.list_namespaced_network_policy(namespace, label_selector=selector).items
    return {item.metadata.name: item for item in items}


def applied(cluster: Cluster, namespace: str, scope: dict[str, Any], *, timeout: float = 20) -> Any:
    """Wait until this test's policy's NetworkPolicy exists in ``namespace``; return it."""
    netpol = f"mamori-{scope['policy_name']}"
    return wait_until(
        lambda: managed(cluster, namespace, scope).get(netpol),
        timeout=timeout,
        message=f"NetworkPolicy {namespace}/{netpol}",
    )


def unmanaged_policy(cluster: Cluster, namespace: str, name: str = "team-own") -> Any:
    return cluster.net.create_namespaced_network_policy(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]},
        },
    )


def test_created_in_selected_namespaces_only_and_others_left_alone(
    cluster: Cluster, operator: Services, scope: dict[str, Any]
) -> None:
    covered_a, exempt = namespace(cluster, scope), namespace(cluster, scope)
    elsewhere = namespace(cluster, scope, selected=False)
    own = unmanaged_policy(cluster, covered_a)
    own_exempt = unmanaged_policy(cluster, exempt)
    name = policy(
        cluster,
        scope,
        exemptNamespaces=[exempt],
        networkPolicy={"allowedEgressCIDRs": ["10.0.0.0/8", "0.0.0.0/0"]},
    )

    created = wait_until(lambda: managed(cluster, covered_a, scope).get(f"mamori-{name}"))
    spec = cluster.api.sanitize_for_serialization(created.spec)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"] == {}
    assert {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}} in spec["egress"][
        -1
    ]["to"]
    assert created.metadata.labels["mamori.io/policy"] == name
    assert created.metadata.owner_references[0].kind == "ClusterSecurityPolicy"

    def settled() -> dict[str, Any] | None:
        current = cluster.policy(name)
        status = current.get("status", {})
        wanted = status.get("namespaces") == {"selected": 1, "exempt": 1}
        counts = {"managed": 1, "desired": 1, "inPlace": 1, "ready": "1/1"}
        return current if wanted and status.get("networkPolicies") == counts else None

    status = wait_until(settled, message="status counts")
    assert condition(status, "NetworkPoliciesReady")["status"] == "True"
    assert managed(cluster, exempt, scope) == {}
    assert managed(cluster, elsewhere, scope) == {}
    assert cluster.network_policies(covered_a)["team-own"].metadata.resource_version == (
        own.metadata.resource_version
    )
    assert cluster.network_policies(exempt)["team-own"].metadata.resource_version == (
        own_exempt.metadata.resource_version
    )


def test_updated_when_the_policy_changes(
    cluster: Cluster, operator: Services, scope: dict[str, Any]
) -> None:
    target = namespace(cluster, scope)
    policy(cluster, scope, networkPolicy={})
    netpol = applied(cluster, target, scope).metadata.name

    policy(cluster, scope, networkPolicy={"defaultDeny": ["Egress"], "allowDNS": False})

    def updated() -> Any:
        item = managed(cluster, target, scope).get(netpol)
        return item if item is not None and item.spec.policy_types == ["Egress"] else None

    spec = cluster.api.sanitize_for_serialization(wait_until(updated).spec)
    assert spec["egress"] == [{"to": [{"podSelector": {}}]}]  # same namespace only, no DNS
    assert "ingress" not in spec


def test_repaired_after_delete_and_after_edit(
    cluster: Cluster, operator: Services, scope: dict[str, Any]
) -> None:
    target = namespace(cluster, scope)
    name = policy(cluster, scope, networkPolicy={})
    original = applied(cluster, target, scope)
    netpol = original.metadata.name

    cluster.net.delete_namespaced_network_policy(netpol, target)
    restored = wait_until(
        lambda: (
            (item := managed(cluster, target, scope).get(netpol))
            and item.metadata.uid != original.metadata.uid
            and item
        )
    )
    assert restored.spec.policy_types == ["Ingress", "Egress"]

    cluster.net.patch_namespaced_network_policy(
        netpol, target, {"spec": {"ingress": [{"from": [{"namespaceSelector": {}}]}]}}
    )
    wait_until(
        lambda: (
            len(managed(cluster, target, scope)[netpol].spec.ingress or []) == 1
            and managed(cluster, target, scope)[netpol].spec.ingress[0]._from[0].namespace_selector
            is None
        )
    )
    reasons = wait_until(
        lambda: (
            {e.reason for e in cluster.events_about("default", name)}
            >= {"NetworkPolicyRestored", "NetworkPolicyRepaired"}
            and {e.reason for e in cluster.events_about("default", name)}
        )
    )
    assert "NetworkPolicyRepaired" in reasons
    assert operator.metrics.repairs._value.get() >= 2


def test_new_namespace_is_covered_within_seconds(
    cluster: Cluster, operator: Services, scope: dict[str, Any]
) -> None:
    policy(cluster, scope, networkPolicy={})
    namespace(cluster, scope)  # make sure the policy is live before timing
    applied(cluster, scope["namespaces"][0], scope)

    started = time.monotonic()
    fresh = namespace(cluster, scope)
    applied(cluster, fresh, scope, timeout=5)
    assert time.monotonic() - started < 5


def test_removed_when_namespace_leaves_and_when_policy_is_deleted(
    cluster: Cluster, operator: Services, scope: dict[str, Any]
) -> None:
    leaving, staying = namespace(cluster, scope), namespace(cluster, scope)
    own = unmanaged_policy(cluster, leaving)
    name = policy(cluster, scope, networkPolicy={})
    for ns in (leaving, staying):
        applied(cluster, ns, scope)

    cluster.label_namespace(leaving, {"mamori-test": None})
    wait_until(lambda: managed(cluster, leaving, scope) == {})
    assert f"mamori-{name}" in managed(cluster, staying, scope)
    assert cluster.network_policies(leaving)["team-own"].metadata.uid == own.metadata.uid

    cluster.delete_policy(name)
    wait_until(lambda: managed(cluster, staying, scope) == {})
    assert "team-own" in cluster.network_policies(leaving)


def test_someone_elses_policy_with_our_name_is_not_clobbered(
    cluster: Cluster, operator: Services, scope: dict[str, Any]
) -> None:
    target = namespace(cluster, scope)
    name = unique("csp")
    scope["policy_name"] = name
    squatter = unmanaged_policy(cluster, target, name=f"mamori-{name}")
    policy(cluster, scope, networkPolicy={})

    status = wait_until(
        lambda: (
            condition(cluster.policy(name), "NetworkPoliciesReady").get("status") == "False"
            and cluster.policy(name)
        )
    )
    assert condition(status, "NetworkPoliciesReady")["reason"] == "ApplyFailed"
    assert "not managed by mamori" in condition(status, "NetworkPoliciesReady")["message"]
    assert condition(status, "Ready")["status"] == "False"
    current = cluster.network_policies(target)[f"mamori-{name}"]
    assert current.metadata.resource_version == squatter.metadata.resource_version


def test_no_write_when_nothing_changed(
    cluster: Cluster, operator: Services, scope: dict[str, Any]
) -> None:
    target = namespace(cluster, scope)
    name = policy(cluster, scope, networkPolicy={})
    netpol = applied(cluster, target, scope)
    wait_until(lambda: cluster.policy(name).get("status", {}).get("networkPolicies"))

    def patches() -> float:
        return operator.metrics.api_requests.labels(
            verb="patch", resource="networkpolicies"
        )._value.get()

    before = patches()
    cluster.label_namespace(target, {"unrelated": "change"})
    wait_until(
        lambda: (
            (ns := operator.state.namespace(target)) is not None
            and ns.labels.get("unrelated") == "change"
        )
    )
    operator.reconciler.reconcile_all()  # and a full resync on top
    assert patches() == before
    after = managed(cluster, target, scope)[f"mamori-{name}"]
    assert after.metadata.resource_version == netpol.metadata.resource_version


def test_bad_spec_is_rejected_at_apply_time(cluster: Cluster, scope: dict[str, Any]) -> None:
    with pytest.raises(ApiException) as caught:
        policy(
            cluster,
            scope,
            enforcement="Deny",
            networkPolicy={"defaultDeny": ["Sideways"], "allowedEgressCIDRs": ["10.0.0.1"]},
        )
    assert caught.value.status == 422
    body = caught.value.body
    assert "spec.enforcement" in body and "spec.networkPolicy.defaultDeny[0]" in body
