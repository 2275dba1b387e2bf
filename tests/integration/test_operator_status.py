"""ClusterSecurityPolicy status: background audit with the admission engine, counts, conditions,
what ``kubectl get csp`` prints, and a broken spec explained."""

from __future__ import annotations

from typing import Any

import pytest

from mamori_operator.services import Services
from tests.integration.operator_support import (
    Cluster,
    condition,
    fake_digest,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def operator_overrides() -> dict[str, Any]:
    return {"offenders": 2}


def settled_status(cluster: Cluster, name: str, check: Any) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        policy = cluster.policy(name)
        try:
            return policy if check(policy.get("status") or {}) else None
        except (KeyError, TypeError):
            return None

    try:
        return wait_until(ready, message=f"status of {name}")
    except AssertionError as error:
        raise AssertionError(f"{error}; status is {cluster.policy(name).get('status')}") from None


def test_running_pods_are_audited_and_counted(
    cluster: Cluster, operator: Services, made: dict[str, list[str]], kubectl: Any
) -> None:
    ns, other, name = unique("audit"), unique("audit"), unique("audit")
    for namespace in (ns, other):
        cluster.create_namespace(namespace, {"mamori-test": ns})
        made["namespaces"].append(namespace)
    pinned = f"registry.example.com/app@{fake_digest(ns)}"
    # admitted before the policy existed: two pods break it, one does not
    cluster.create_pod(ns, "good", {"app": pinned})
    cluster.create_pod(ns, "tagged", {"app": "registry.example.com/app:1.0"})
    cluster.create_pod(other, "foreign", {"app": "docker.io/library/nginx:1.27"})
    cluster.kubelet_reports(ns, "good", {"app": pinned})
    made["policies"].append(name)
    cluster.apply_policy(
        name,
        {
            "enforcement": "Audit",
            "podSecurity": "privileged",
            "requireImageDigest": True,
            "trustedRegistries": ["registry.example.com"],
            "exemptNamespaces": ["kube-system"],
            "namespaceSelector": {"matchLabels": {"mamori-test": ns}},
            "imageScan": {"providers": ["imagescan"]},
        },
    )

    status = settled_status(
        cluster, name, lambda s: s["violations"]["pods"] == 2 and s["pods"]["unscanned"] == 1
    )["status"]
    assert status["observedGeneration"] == 1
    assert status["namespaces"] == {"selected": 2, "exempt": 1}
    assert status["violations"]["byRule"] == {"image-digest": 2, "trusted-registry": 1}
    offenders = [
        {"namespace": other, "name": "foreign", "rules": ["image-digest", "trusted-registry"]},
        {"namespace": ns, "name": "tagged", "rules": ["image-digest"]},
    ]
    assert status["violations"]["offenders"] == sorted(
        offenders, key=lambda o: (o["namespace"], o["name"])
    )
    # "good" ran and has no scan; the other two have no digest from a kubelet yet
    assert status["pods"] == {
        "total": 3,
        "clean": 0,
        "vulnerable": 0,
        "pending": 2,
        "unscanned": 1,
        "error": 0,
    }
    assert condition({"status": status}, "Ready")["status"] == "True"

    table = kubectl("get", "csp", name).stdout.splitlines()
    header = ["NAME", "ENFORCEMENT", "NAMESPACES", "VIOLATIONS", "NETWORKPOLICIES", "READY", "AGE"]
    assert table[0].split() == header
    assert table[1].split()[:6] == [name, "Audit", "2", "2", "0/0", "True"]

    # a pod goes away, another is fixed by its owner: the counts follow
    cluster.core.delete_namespaced_pod("foreign", other, grace_period_seconds=0)
    settled_status(cluster, name, lambda s: s["violations"]["pods"] == 1)
    cluster.apply_policy(
        name,
        {
            "enforcement": "Warn",
            "requireImageDigest": False,
            "namespaceSelector": {"matchLabels": {"mamori-test": ns}},
        },
    )
    status = settled_status(
        cluster, name, lambda s: s["observedGeneration"] == 2 and s["violations"]["pods"] == 0
    )["status"]
    assert status["violations"] == {"pods": 0}
    assert status["pods"]["unscanned"] == 0  # no imageScan section any more: not counted
    wait_until(  # and the pods' scan annotations go with it
        lambda: "mamori.io/scan-status" not in cluster.pod_annotations(ns, "good")
    )


def test_no_finalizer_so_deletion_never_waits_for_the_operator(
    cluster: Cluster, operator: Services, made: dict[str, list[str]]
) -> None:
    name = unique("final")
    made["policies"].append(name)
    cluster.apply_policy(
        name, {"namespaceSelector": {"matchLabels": {"mamori-test": name}}, "networkPolicy": {}}
    )
    handled = settled_status(cluster, name, lambda s: s.get("observedGeneration") == 1)
    assert not handled["metadata"].get("finalizers")
    assert not [k for k in handled["metadata"].get("annotations") or {} if "kopf" in k]
    cluster.delete_policy(name)
    wait_until(lambda: not [p for p in _policy_names(cluster) if p == name], timeout=5)


def _policy_names(cluster: Cluster) -> list[str]:
    items = cluster.custom.list_cluster_custom_object(
        "mamori.io", "v1alpha1", "clustersecuritypolicies"
    )["items"]
    return [item["metadata"]["name"] for item in items]


def test_spec_the_schema_accepts_but_mamori_rejects(
    cluster: Cluster, operator: Services, made: dict[str, list[str]]
) -> None:
    name = unique("broken")
    made["policies"].append(name)
    cluster.apply_policy(
        name,
        {
            "namespaceSelector": {"matchLabels": {"mamori-test": name}},
            "networkPolicy": {"allowedEgressCIDRs": ["10.0.0.1/8"]},  # host bits set
        },
    )
    status = settled_status(cluster, name, lambda s: condition({"status": s}, "Ready")["reason"])
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.networkPolicy.allowedEgressCIDRs[0]" in ready["message"]
    events = wait_until(lambda: cluster.events_about("default", name))
    assert events[0].reason == "InvalidSpec" and events[0].type == "Warning"

    cluster.apply_policy(
        name,
        {
            "namespaceSelector": {"matchLabels": {"mamori-test": name}},
            "networkPolicy": {"allowedEgressCIDRs": ["10.0.0.0/8"]},
        },
    )
    status = settled_status(
        cluster, name, lambda s: condition({"status": s}, "Ready")["status"] == "True"
    )
    assert status["status"]["observedGeneration"] == 2


def test_status_is_not_rewritten_when_nothing_changes(
    cluster: Cluster, operator: Services, made: dict[str, list[str]]
) -> None:
    name = unique("quiet")
    made["policies"].append(name)
    cluster.apply_policy(name, {"namespaceSelector": {"matchLabels": {"mamori-test": name}}})
    first = settled_status(cluster, name, lambda s: s.get("observedGeneration") == 1)
    passes = operator.housekeeper.passes
    wait_until(lambda: operator.housekeeper.passes >= passes + 3, message="three status passes")
    assert (
        cluster.policy(name)["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    )
