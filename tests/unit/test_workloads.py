"""Every workload kind yields its pod spec, with paths into the object the user wrote."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from mamori.podspec import PodContext
from mamori.workloads import extract_workload

POD_SPEC = {"containers": [{"name": "app", "image": "nginx"}]}
TEMPLATE = {"metadata": {"labels": {"a": "b"}}, "spec": POD_SPEC}


@pytest.mark.parametrize(
    ("resource", "spec_path"),
    [
        pytest.param({"apiVersion": "v1", "kind": "Pod", "spec": POD_SPEC}, "spec", id="pod"),
        pytest.param(
            {"apiVersion": "v1", "kind": "PodTemplate", "template": TEMPLATE},
            "template.spec",
            id="podtemplate",
        ),
        pytest.param(
            {"apiVersion": "v1", "kind": "ReplicationController", "spec": {"template": TEMPLATE}},
            "spec.template.spec",
            id="replicationcontroller",
        ),
        *[
            pytest.param(
                {"apiVersion": version, "kind": kind, "spec": {"template": TEMPLATE}},
                "spec.template.spec",
                id=kind.lower(),
            )
            for version, kind in [
                ("apps/v1", "Deployment"),
                ("apps/v1", "ReplicaSet"),
                ("apps/v1", "StatefulSet"),
                ("apps/v1", "DaemonSet"),
                ("batch/v1", "Job"),
            ]
        ],
        pytest.param(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "spec": {"jobTemplate": {"spec": {"template": TEMPLATE}}},
            },
            "spec.jobTemplate.spec.template.spec",
            id="cronjob",
        ),
    ],
)
def test_pod_spec_found_with_path(resource: dict[str, Any], spec_path: str) -> None:
    workload = extract_workload({**resource, "metadata": {"name": "w", "namespace": "ns"}})
    assert workload is not None
    assert workload.pod.spec_path == spec_path
    assert workload.pod.spec == POD_SPEC
    assert (workload.name, workload.namespace) == ("w", "ns")
    [container] = list(workload.pod.containers())
    assert container.field("image") == f"{spec_path}.containers[0].image"


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param({"apiVersion": "v1", "kind": "ConfigMap"}, id="configmap"),
        pytest.param({"apiVersion": "example.com/v1", "kind": "Deployment"}, id="foreign-group"),
        pytest.param({"kind": "Pod"} | {"apiVersion": "apps/v1"}, id="pod-in-wrong-group"),
        pytest.param({}, id="empty"),
    ],
)
def test_non_workloads_are_not_judged(resource: dict[str, Any]) -> None:
    assert extract_workload(resource) is None


def test_malformed_template_is_treated_as_empty_not_a_crash() -> None:
    workload = extract_workload({"apiVersion": "apps/v1", "kind": "Deployment", "spec": "oops"})
    assert workload is not None
    assert workload.pod.spec == {}
    assert list(workload.pod.containers()) == []


def test_containers_in_all_three_lists_in_stable_order() -> None:
    spec = {
        "containers": [{"name": "app"}, {"name": "side"}],
        "initContainers": [{"name": "init"}],
        "ephemeralContainers": [{"name": "debug"}],
    }
    workload = extract_workload({"apiVersion": "v1", "kind": "Pod", "spec": spec})
    assert workload is not None
    assert [(c.list_name, c.name, c.path) for c in workload.pod.containers()] == [
        ("initContainers", "init", "spec.initContainers[0]"),
        ("containers", "app", "spec.containers[0]"),
        ("containers", "side", "spec.containers[1]"),
        ("ephemeralContainers", "debug", "spec.ephemeralContainers[0]"),
    ]


def test_malformed_parts_are_recorded_with_their_paths() -> None:
    """Read as empty so rules never crash, and recorded so that pod-structure denies them."""
    deployment = extract_workload({"apiVersion": "apps/v1", "kind": "Deployment", "spec": "oops"})
    assert deployment is not None
    assert [m.path for m in deployment.pod.malformed()] == ["spec"]
    spec = {
        "initContainers": "busybox",
        "containers": [{"name": "app"}, ["nested"], None],
        "ephemeralContainers": {"name": "debug"},
    }
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}},
    }
    workload = extract_workload(cronjob)
    assert workload is not None
    prefix = "spec.jobTemplate.spec.template.spec"
    assert [(m.path, m.expected) for m in workload.pod.malformed()] == [
        (f"{prefix}.initContainers", "a list of container objects"),
        (f"{prefix}.containers[1]", "a container object"),
        (f"{prefix}.containers[2]", "a container object"),
        (f"{prefix}.ephemeralContainers", "a list of container objects"),
    ]
    assert [c.name for c in workload.pod.containers()] == ["app"]


def test_absent_parts_are_not_malformed() -> None:
    workload = extract_workload({"apiVersion": "apps/v1", "kind": "Deployment"})
    assert workload is not None and workload.pod.malformed() == ()
    pod = extract_workload({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": []}})
    assert pod is not None and pod.pod.malformed() == ()


def test_pod_context_is_an_immutable_value_that_copies_and_pickles() -> None:
    spec = {
        "os": {"name": "windows"},
        "hostUsers": False,
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "app", "image": "nginx"}, {"name": "bad", "image": "Nginx"}],
    }
    pod = PodContext(spec=spec, metadata={"name": "p"}, spec_path="spec.template.spec")
    assert (pod.windows, pod.user_namespace, pod.images_all_parsed) == (True, True, False)
    assert [image for _, image, _ in pod.parsed_images()] == ["nginx"]
    assert [scope.label for scope in pod.scopes()] == ["pod", 'container "app"', 'container "bad"']
    assert pod.scopes()[1].field("privileged") == (
        "spec.template.spec.containers[0].securityContext.privileged"
    )
    for copied in (copy.deepcopy(pod), pickle.loads(pickle.dumps(pod))):
        assert copied == pod
        assert [c.path for c in copied.containers()] == [c.path for c in pod.containers()]
    with pytest.raises(AttributeError):
        pod.spec = {}  # type: ignore[misc]
    assert PodContext(spec={}).metadata == {} and PodContext(spec={}).malformed() == ()
