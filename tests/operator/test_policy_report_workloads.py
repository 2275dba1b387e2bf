"""Which workload a pod's results are filed under, from the pod alone (no API call)."""

from __future__ import annotations

from typing import Any

import pytest

from mamori_operator.reports.workloads import WorkloadRef, workload_of
from mamori_operator.state.pods import pod_record


def pod(name: str, *, owner: tuple[str, str] | None = None, **labels: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    metadata["labels"] = labels
    if owner is not None:
        kind, owner_name = owner
        metadata["ownerReferences"] = [
            {"apiVersion": "x/v1", "kind": kind, "name": owner_name, "uid": "o", "controller": True}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": []}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(pod("web"), WorkloadRef("Pod", "web", "v1", "uid-web"), id="bare-pod"),
        pytest.param(
            pod("web-7d9f-abc", owner=("ReplicaSet", "web-7d9f"), **{"pod-template-hash": "7d9f"}),
            WorkloadRef("Deployment", "web", "apps/v1"),
            id="deployment-by-template-hash",
        ),
        pytest.param(
            pod("a-b-c-x", owner=("ReplicaSet", "a-b-c"), **{"pod-template-hash": "c"}),
            WorkloadRef("Deployment", "a-b", "apps/v1"),
            id="deployment-name-with-dashes",
        ),
        pytest.param(
            pod("rs-x", owner=("ReplicaSet", "rs")),
            WorkloadRef("ReplicaSet", "rs", "apps/v1"),
            id="replicaset-without-hash-label",
        ),
        pytest.param(
            pod("rs-x", owner=("ReplicaSet", "rs"), **{"pod-template-hash": "other"}),
            WorkloadRef("ReplicaSet", "rs", "apps/v1"),
            id="hash-label-not-the-name-suffix",
        ),
        pytest.param(
            pod("h-x", owner=("ReplicaSet", "-h"), **{"pod-template-hash": "h"}),
            WorkloadRef("ReplicaSet", "-h", "apps/v1"),
            id="nothing-before-the-hash",
        ),
        pytest.param(
            pod("db-0", owner=("StatefulSet", "db")),
            WorkloadRef("StatefulSet", "db", "apps/v1"),
            id="statefulset",
        ),
        pytest.param(
            pod("agent-x", owner=("DaemonSet", "agent")),
            WorkloadRef("DaemonSet", "agent", "apps/v1"),
            id="daemonset",
        ),
        pytest.param(
            pod("nightly-29000000-x", owner=("Job", "nightly-29000000")),
            WorkloadRef("Job", "nightly-29000000", "batch/v1"),
            id="cronjob-job-stays-a-job",
        ),
        pytest.param(
            pod("vm-x", owner=("VirtualMachineInstance", "vm")),
            WorkloadRef("VirtualMachineInstance", "vm", ""),
            id="unknown-owner-kind",
        ),
    ],
)
def test_workload_of(body: dict[str, Any], expected: WorkloadRef) -> None:
    assert workload_of(pod_record(body)) == expected


@pytest.mark.parametrize(
    ("workload", "pod_field", "expected"),
    [
        pytest.param(
            WorkloadRef("Pod", "p", "v1"), "spec.containers[0].image", "spec.containers[0].image"
        ),
        pytest.param(
            WorkloadRef("Deployment", "d", "apps/v1"),
            "spec.containers[0].image",
            "spec.template.spec.containers[0].image",
        ),
        pytest.param(
            WorkloadRef("CronJob", "c", "batch/v1"),
            "metadata.annotations",
            "spec.jobTemplate.spec.template.metadata.annotations",
        ),
        pytest.param(WorkloadRef("Custom", "c"), "spec.volumes[0]", "spec.volumes[0]"),
    ],
)
def test_field_paths_are_paths_in_the_workload(
    workload: WorkloadRef, pod_field: str, expected: str
) -> None:
    assert workload.field_path(pod_field) == expected


def test_a_reference_has_only_what_is_known() -> None:
    assert WorkloadRef("Deployment", "web", "apps/v1").reference("ns") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "namespace": "ns",
    }
    assert WorkloadRef("Pod", "p", "v1", "u").reference("ns")["uid"] == "u"
    assert "apiVersion" not in WorkloadRef("Custom", "c").reference("ns")
