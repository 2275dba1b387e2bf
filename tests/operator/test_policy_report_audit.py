"""The audit's findings per workload: replicas share one verdict, and changes are noticed."""

from __future__ import annotations

from typing import Any

from mamori_operator.handlers.policies import policy_record
from mamori_operator.reports.workloads import WorkloadRef
from mamori_operator.state.cluster import ClusterState, NamespaceRecord
from mamori_operator.state.pods import pod_record
from mamori_operator.status.audit import Auditor

WEB = WorkloadRef("Deployment", "web", "apps/v1")


def replica(name: str, *, privileged: bool, version: str = "1", rs: str = "web-5f6") -> Any:
    return pod_record(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "team",
                "uid": f"uid-{name}",
                "resourceVersion": version,
                "labels": {"pod-template-hash": rs.rsplit("-", 1)[1]},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs,
                        "uid": "r",
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "registry.example/app:1",
                        "securityContext": {"privileged": privileged},
                    }
                ]
            },
        }
    )


def cluster(*pods: Any) -> ClusterState:
    state = ClusterState()
    state.set_namespace(NamespaceRecord("team", {}))
    state.set_policy(
        policy_record(
            {
                "apiVersion": "mamori.io/v1alpha1",
                "kind": "ClusterSecurityPolicy",
                "metadata": {"name": "baseline", "uid": "u", "generation": 1},
                "spec": {"enforcement": "Warn", "podSecurity": "baseline"},
            }
        )
    )
    for pod in pods:
        state.set_pod(pod)
    return state


def test_two_replicas_are_one_workload_with_one_shared_verdict() -> None:
    state = cluster(replica("web-5f6-a", privileged=True), replica("web-5f6-b", privileged=True))
    auditor = Auditor(state)
    audits = auditor.audit()
    assert audits[("team", "web-5f6-a")] == {"baseline": ("privileged",)}
    workloads = auditor.workloads()
    assert list(workloads) == ["team"]
    [(workload, violations)] = workloads["team"].items()
    assert workload == WEB
    assert [(v.policy, v.rule, v.container) for v in violations] == [
        ("baseline", "privileged", "app")
    ]
    entries = list(auditor._results.values())
    assert entries[0].verdict is entries[1].verdict  # one object for both replicas
    assert entries[0].workload is entries[1].workload


def test_a_rollout_lists_what_either_replica_set_breaks_once() -> None:
    state = cluster(
        replica("web-5f6-a", privileged=True),
        replica("web-7aa-a", privileged=False, rs="web-7aa"),
    )
    auditor = Auditor(state)
    auditor.audit()
    assert [v.rule for v in auditor.workloads()["team"][WEB]] == ["privileged"]


def test_the_revision_moves_only_when_a_verdict_or_a_pod_does() -> None:
    state = cluster(replica("web-5f6-a", privileged=True))
    auditor = Auditor(state)
    auditor.audit()
    first = auditor.revision
    auditor.audit()
    assert auditor.revision == first
    state.set_pod(replica("web-5f6-a", privileged=True, version="2"))  # same verdict
    auditor.audit()
    assert auditor.revision == first
    state.set_pod(replica("web-5f6-a", privileged=False, version="3"))
    auditor.audit()
    assert auditor.revision == first + 1
    assert auditor.workloads() == {}
    state.set_pod(replica("web-5f6-b", privileged=True))
    auditor.audit()
    state.remove_pod("team", "web-5f6-b")
    auditor.audit()
    assert auditor.revision == first + 3
    assert auditor.workloads() == {}
