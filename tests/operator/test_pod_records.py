"""How the view keeps a pod (state/cluster.py): its body compressed against a pod dictionary,
one key tuple shared by the view, its indexes and whoever asks for the key.

Pods are the one kind kept by the tens of thousands, so what each costs is behaviour here: the
body must come back exactly as it went in (the audit judges it), whatever it holds.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from mamori_operator.state.cluster import ClusterState, PodRecord, encode_body
from mamori_operator.state.pods import pod_record

DIGEST = "sha256:" + "d" * 64

SERVED_SPEC: dict[str, Any] = {
    "containers": [
        {
            "name": "app",
            "image": "registry.example/shop/app:1.4",
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True},
        }
    ],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {},
    "schedulerName": "default-scheduler",
    "tolerations": [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        }
    ],
    "priority": 0,
    "enableServiceLinks": True,
    "preemptionPolicy": "PreemptLowerPriority",
}


def pod(name: str = "web-1", version: str = "5", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": "shop",
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": version,
            "labels": {"app": "web"},
            "annotations": {"note": "x"},
        },
        "spec": {**SERVED_SPEC, **spec},
        "status": {"phase": "Running"},
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param(pod(), id="a-pod-as-served"),
        pytest.param(
            pod(containers=[{"name": "ü", "image": "registry.example/日本:1", "args": ["\x00"]}]),
            id="non-ascii-and-control-characters",
        ),
        pytest.param(
            pod(
                containers=[
                    {"name": f"c{i}", "image": f"registry.example/a{i}"} for i in range(300)
                ]
            ),
            id="larger-than-the-dictionary",
        ),
    ],
)
def test_a_body_comes_back_exactly_as_it_went_in(body: dict[str, Any]) -> None:
    record = PodRecord("shop", "web-1", "u", "5", "Pod", "web-1", (), {}, encode_body(body))
    assert record.body == body
    assert record.body is not record.body  # decoded afresh: the caller's to keep


def test_the_dictionary_halves_what_a_served_pod_costs() -> None:
    body = pod()
    alone = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
    assert len(encode_body(body)) * 2 < len(alone)


def replace_by_event(state: ClusterState) -> None:
    state.set_pod(pod_record(pod(version="9")))


def replace_by_list(state: ClusterState) -> None:
    assert state.offer_listed_pod(pod_record(pod(version="9")))


def replace_by_our_patch(state: ClusterState) -> None:
    state.update_pod_annotations(
        ("shop", "web-1"), {"mamori.io/scan-status": "clean"}, resource_version="9"
    )


@pytest.mark.parametrize(
    "replace",
    [
        pytest.param(replace_by_event, id="watch-event"),
        pytest.param(replace_by_list, id="re-list"),
        pytest.param(replace_by_our_patch, id="our-own-patch"),
    ],
)
def test_a_replaced_pod_keeps_one_key_tuple_everywhere(
    replace: Callable[[ClusterState], None],
) -> None:
    state = ClusterState()
    body = pod(containers=[{"name": "app", "image": f"registry.example/app@{DIGEST}"}])
    state.set_pod(pod_record(body))
    (first_key,) = state.pods

    replace(state)

    record = state.pod(("shop", "web-1"))
    assert record is not None and record.resource_version == "9"
    (stored_key,) = state.pods
    assert stored_key is first_key
    assert record.key is first_key
    (by_namespace,) = state.pods_by_namespace["shop"]
    assert by_namespace is first_key
    for keys in state.pods_by_digest.values():
        assert all(key is first_key for key in keys)


def test_the_key_is_not_part_of_what_makes_two_records_equal() -> None:
    one, other = pod_record(pod()), pod_record(pod())
    assert one.key is not other.key
    assert one == other
