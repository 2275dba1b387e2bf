"""The report writer's decisions, with the API server played by a recording stand-in: what it
writes, what it never writes, and what it does when the API says no. (The same behaviour on the
real API server: tests/integration/test_operator_policy_reports.py.)"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from mamori_operator.api.kube import KubeError
from mamori_operator.handlers.policies import policy_record
from mamori_operator.metrics import Metrics
from mamori_operator.reports.build import ReportLimits
from mamori_operator.reports.writer import PolicyReporter
from mamori_operator.state.cluster import ClusterState, NamespaceRecord
from mamori_operator.state.pods import pod_record
from mamori_operator.status.audit import Auditor

COLLECTIONS = ("policyreports", "clusterpolicyreports")


class RecordingKube:
    """Keeps objects by path; records every write; fails the calls it is told to."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.missing_crds = False
        self.failures: list[KubeError] = []

    def _fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def list_all(
        self, path: str, *, resource: str, label_selector: str
    ) -> Iterator[dict[str, Any]]:
        if self.missing_crds:
            raise KubeError(404, "NotFound", "the server could not find the requested resource")
        assert label_selector == "app.kubernetes.io/managed-by=mamori"
        for stored_path, body in sorted(self.objects.items()):
            if f"/{resource}/" in stored_path:
                yield copy.deepcopy(body)

    def create(self, path: str, body: dict[str, Any], *, resource: str) -> dict[str, Any]:
        self.calls.append(("create", path))
        self._fail()
        target = f"{path}/{body['metadata']['name']}"
        if target in self.objects:
            raise KubeError(409, "AlreadyExists", "exists")
        stored = copy.deepcopy(body)
        stored["metadata"]["uid"] = f"uid-{len(self.calls)}"
        self.objects[target] = stored
        return copy.deepcopy(stored)

    def apply(
        self, path: str, body: dict[str, Any], *, resource: str, force: bool
    ) -> dict[str, Any]:
        self.calls.append(("apply", path))
        self._fail()
        stored = copy.deepcopy(body)
        stored["metadata"]["uid"] = self.objects[path]["metadata"]["uid"]
        self.objects[path] = stored
        return copy.deepcopy(stored)

    def request(self, method: str, path: str, *, resource: str, body: Any = None) -> dict[str, Any]:
        assert method == "DELETE"
        self.calls.append(("delete", path))
        self._fail()
        assert body == {"preconditions": {"uid": self.objects[path]["metadata"]["uid"]}}
        del self.objects[path]
        return {}


def pod(namespace: str, name: str, *, privileged: bool, version: str = "1") -> Any:
    return pod_record(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": name,
                "resourceVersion": version,
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


def policy(name: str, **spec: Any) -> Any:
    return policy_record(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {"enforcement": "Warn", "podSecurity": "baseline", **spec},
        }
    )


@pytest.fixture
def state() -> ClusterState:
    state = ClusterState()
    for name in ("a", "b"):
        state.set_namespace(NamespaceRecord(name, {}))
    state.set_policy(policy("baseline"))
    state.set_pod(pod("a", "bad", privileged=True))
    return state


def reporter(state: ClusterState, kube: RecordingKube) -> PolicyReporter:
    return PolicyReporter(
        state=state,
        kube=kube,  # type: ignore[arg-type]
        auditor=Auditor(state),
        limits=ReportLimits(),
        relist_interval=300.0,
        clock=lambda: 1_800_000_000.0,
    )


REPORT_A = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/a/policyreports/mamori"


def test_one_write_per_change_and_none_without(state: ClusterState) -> None:
    kube = RecordingKube()
    writer = reporter(state, kube)
    assert writer.refresh() == 1
    assert kube.calls == [("create", REPORT_A.rsplit("/", 1)[0])]
    assert writer.refresh() == 0
    state.set_pod(pod("a", "bad", privileged=True, version="2"))  # same verdict
    state.set_pod(pod("b", "fine", privileged=False))
    assert writer.refresh() == 0
    state.set_pod(pod("a", "bad", privileged=False, version="3"))
    assert writer.refresh() == 1
    assert kube.calls[-1] == ("delete", REPORT_A)
    assert kube.objects == {}


def test_a_restarted_operator_adopts_its_reports_without_writing(state: ClusterState) -> None:
    kube = RecordingKube()
    reporter(state, kube).refresh()
    calls = len(kube.calls)
    again = reporter(state, kube)  # a new run: it knows only what it lists
    assert again.refresh() == 0
    assert len(kube.calls) == calls


def test_a_failed_write_is_tried_again_on_the_next_pass(state: ClusterState) -> None:
    kube = RecordingKube()
    kube.failures.append(KubeError(500, "InternalError", "etcd timeout"))
    writer = reporter(state, kube)
    assert writer.refresh() == 0
    assert kube.objects == {}
    assert writer.refresh() == 1
    assert REPORT_A in kube.objects
    samples = kube.metrics.registry.get_sample_value
    assert samples("mamori_operator_policy_report_writes_total", {"outcome": "failed"}) == 1
    assert samples("mamori_operator_policy_report_writes_total", {"outcome": "written"}) == 1


def test_without_the_crds_nothing_is_written(state: ClusterState) -> None:
    kube = RecordingKube()
    kube.missing_crds = True
    writer = reporter(state, kube)
    assert writer.refresh() == 0
    assert kube.calls == []
    assert writer.available == {"policyreports": False, "clusterpolicyreports": False}


def test_a_namespace_being_deleted_takes_its_report_with_it(state: ClusterState) -> None:
    kube = RecordingKube()
    writer = reporter(state, kube)
    writer.refresh()
    state.set_namespace(NamespaceRecord("a", {}, terminating=True))
    state.set_pod(pod("a", "bad", privileged=False, version="2"))
    assert writer.refresh() == 0
    assert kube.calls == [("create", REPORT_A.rsplit("/", 1)[0])]


def test_an_invalid_policy_goes_in_the_cluster_report(state: ClusterState) -> None:
    kube = RecordingKube()
    state.set_policy(policy("broken", podSecurity="nonsense"))
    writer = reporter(state, kube)
    writer.refresh()
    cluster = kube.objects["/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/mamori"]
    [result] = cluster["results"]
    assert (result["policy"], result["result"]) == ("broken", "error")
    assert "podSecurity" in result["message"]
    state.set_policy(policy("broken"))
    writer.refresh()
    assert "/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/mamori" not in kube.objects
