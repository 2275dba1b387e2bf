"""A re-list replaces the operator's view whole; a watch event during it wins; kopf's re-lists
are recognised; an invalid edit keeps the last valid spec in effect for every consumer."""

from __future__ import annotations

from typing import Any

from mamori_operator.network.reconciler import (
    build_manifest,
    count_network_policies,
    record_from_object,
)
from mamori_operator.state.cluster import ClusterState, Handled, ListedObjects, NamespaceRecord
from mamori_operator.state.pods import pod_record
from mamori_operator.state.records import policy_record


def csp(name: str, *, uid: str = "", generation: int = 1, **spec: Any) -> Any:
    return policy_record(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": name, "uid": uid or f"uid-{name}", "generation": generation},
            "spec": spec,
        }
    )


def netpol(namespace: str, name: str, policy: str = "deny") -> Any:
    return record_from_object(
        {
            "metadata": {
                "namespace": namespace,
                "name": name,
                "labels": {"app.kubernetes.io/managed-by": "mamori", "mamori.io/policy": policy},
            },
            "spec": {"podSelector": {}},
        }
    )


def pod(namespace: str, name: str, version: str = "1") -> Any:
    return pod_record(
        {
            "metadata": {"namespace": namespace, "name": name, "resourceVersion": version},
            "spec": {"containers": [{"name": "app", "image": "nginx@sha256:" + "a" * 64}]},
        }
    )


def listed(state: ClusterState, **overrides: Any) -> ListedObjects:
    """What a re-list would read if the cluster were exactly ``state``, with ``overrides``."""
    values: dict[str, Any] = {
        "policies": state.all_policy_records(),
        "namespaces": state.all_namespaces(),
        "network_policies": list(state.network_policies.values()),
        "pods": state.all_pods(),
        "image_scans": dict(state.image_scans),
    }
    values.update(overrides)
    return ListedObjects(**values)


def populated() -> ClusterState:
    state = ClusterState()
    state.set_policy(csp("deny", networkPolicy={}))
    state.set_policy(csp("scan", imageScan={"providers": ["imagescan"]}))
    for name in ("a", "b", "c"):
        state.set_namespace(NamespaceRecord(name, {}))
        state.set_network_policy(netpol(name, "mamori-deny"))
        state.set_pod(pod(name, "web"))
    return state


def test_objects_missing_from_a_relist_are_gone_without_any_deleted_event() -> None:
    state = populated()
    cluster = listed(
        state,
        policies=[r for r in state.all_policy_records() if r.name != "scan"],
        network_policies=[netpol("a", "mamori-deny")],
        pods=[pod("a", "web")],
    )

    changes = state.replace_listed(cluster)

    assert sorted(state.network_policies) == [("a", "mamori-deny")]
    assert changes.network_policies == {("b", "mamori-deny"), ("c", "mamori-deny")}
    assert [list(state.network_policies_in(n)) for n in "abc"] == [["mamori-deny"], [], []]
    assert [r.name for r in state.all_policy_records()] == ["deny"]
    assert changes.policies == {"scan"}
    assert state.scan_settings("a") is None  # the deleted policy no longer scans anything
    assert [p.key for p in state.all_pods()] == [("a", "web")]
    assert state.pods_using("sha256:" + "a" * 64) == [("a", "web")]


def test_an_unchanged_cluster_changes_nothing() -> None:
    state = populated()
    version = state.policies_version
    assert not state.replace_listed(listed(state))
    assert state.policies_version == version


def test_watch_events_during_the_relist_are_newer_and_win() -> None:
    state = populated()
    state.begin_relist()
    cluster = listed(state)  # read before the events below
    state.remove_network_policy("b", "mamori-deny")  # DELETED arrived after the list
    state.set_network_policy(netpol("d", "mamori-deny"))  # ADDED arrived after the list
    state.remove_pod("c", "web")

    state.replace_listed(cluster)

    assert ("b", "mamori-deny") not in state.network_policies
    assert ("d", "mamori-deny") in state.network_policies
    assert state.network_policies_in("b") == {}
    assert list(state.network_policies_in("d")) == ["mamori-deny"]
    assert state.pod(("c", "web")) is None


def test_a_relisted_object_already_seen_means_kopf_relisted() -> None:
    handled = Handled()
    assert not handled.observe("namespace", "uid-1", None)  # the initial listing
    assert not handled.observe("namespace", "uid-1", "MODIFIED")
    assert not handled.relist_wanted.is_set()
    assert handled.observe("namespace", "uid-1", None)  # listed again: the watch restarted
    assert handled.relist_wanted.is_set()


def test_a_deleted_then_listed_uid_is_a_first_sighting() -> None:
    handled = Handled()
    handled.observe("pod", "uid-1", None)
    handled.observe("pod", "uid-1", "DELETED")
    assert not handled.observe("pod", "uid-1", None)


def test_an_invalid_edit_keeps_the_last_valid_spec_for_scans_audit_and_netpols() -> None:
    state = ClusterState()
    state.set_policy(csp("p", generation=1, imageScan={"providers": ["imagescan"]}))
    state.set_namespace(NamespaceRecord("shop", {}))
    typo = csp("p", generation=2, imageScan={"providers": ["imagescan"], "rescanInterval": "1s"})
    assert typo.policy is None and typo.error is not None

    state.set_policy(typo)

    record = state.policy_record("p")
    assert record is not None and record.error == typo.error
    assert record.policy is not None and record.valid_generation == 1
    assert state.scan_settings("shop") is not None  # scan annotations are not stripped
    assert [p.name for p in state.policies()] == ["p"]  # the audit still judges by it


def test_an_invalid_spec_after_a_relist_also_keeps_the_last_valid_one() -> None:
    state = ClusterState()
    state.set_policy(csp("p", generation=1, imageScan={"providers": ["imagescan"]}))
    typo = csp("p", generation=2, imageScan={"providers": ["imagescan"], "rescanInterval": "1s"})
    state.replace_listed(listed(state, policies=[typo]))
    record = state.policy_record("p")
    assert record is not None and record.policy is not None and record.error is not None


def test_a_recreated_policy_does_not_inherit_the_old_objects_spec() -> None:
    state = ClusterState()
    state.set_policy(csp("p", uid="first", imageScan={"providers": ["imagescan"]}))
    state.set_policy(csp("p", uid="second", imageScan={"rescanInterval": "1s"}))
    record = state.policy_record("p")
    assert record is not None and record.policy is None
    assert state.policies() == []


def test_desired_versus_in_place_counts_each_object() -> None:
    deny = csp("deny", networkPolicy={})
    namespaces = [NamespaceRecord(n, {}) for n in ("a", "b", "c")]
    namespaces.append(NamespaceRecord("gone", {}, terminating=True))
    drifted = build_manifest(deny, namespace="a", spec={"podSelector": {}})
    wanted = {
        ns.name: build_manifest(deny, namespace=ns.name, spec=_rendered(deny)) for ns in namespaces
    }
    actual = {
        ("a", "mamori-deny"): record_from_object(wanted["a"]),
        ("b", "mamori-deny"): record_from_object(drifted | {"metadata": wanted["b"]["metadata"]}),
    }
    counts = count_network_policies([deny], namespaces, actual)
    assert (counts["deny"].desired, counts["deny"].in_place) == (3, 1)


def _rendered(record: Any) -> Any:
    return record.policy.sections["networkPolicy"].render()
