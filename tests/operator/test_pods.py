"""What the operator reads from a pod: digests from the imageID, the owner, our annotations."""

from __future__ import annotations

from typing import Any

from mamori_operator.state.pods import digest_from_image_id, is_finished, owner_of, pod_record

DIGEST = "sha256:" + "c" * 64


def pod(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "u1",
            "resourceVersion": "7",
            "ownerReferences": [
                {
                    "kind": "ReplicaSet",
                    "name": "web-6d4",
                    "controller": True,
                    "apiVersion": "apps/v1",
                }
            ],
            "annotations": {"mamori.io/scan-status": "clean", "other": "x"},
        },
        "spec": {
            "initContainers": [{"name": "init", "image": f"busybox@{DIGEST}"}],
            "containers": [
                {"name": "app", "image": "nginx:1.27"},
                {"name": "side", "image": "envoy"},
            ],
        },
        "status": {
            "containerStatuses": [
                {"name": "app", "imageID": f"docker.io/library/nginx@{DIGEST}"},
                {"name": "side", "imageID": "sha256:" + "d" * 64},
            ]
        },
    }
    body.update(overrides)
    return body


def test_digests_come_from_image_id_or_a_pinned_spec() -> None:
    record = pod_record(pod())
    assert [(i.container, i.digest) for i in record.images] == [
        ("init", DIGEST),  # pinned in the spec, not started yet
        ("app", DIGEST),  # reported by the kubelet
        ("side", None),  # a local image ID is not a registry digest
    ]


def test_owner_annotations_and_audit_body() -> None:
    record = pod_record(pod())
    assert (record.owner_kind, record.owner_name) == ("ReplicaSet", "web-6d4")
    assert record.annotations == {"mamori.io/scan-status": "clean"}
    assert record.body["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert record.key == ("shop", "web-1")


def test_bare_pod_owns_itself() -> None:
    assert owner_of({"name": "solo"}) == ("Pod", "solo")
    assert owner_of({"name": "solo", "ownerReferences": [{"kind": "X", "name": "y"}]}) == (
        "Pod",
        "solo",
    )


def test_image_id_forms() -> None:
    assert digest_from_image_id(f"docker-pullable://nginx@{DIGEST}") == DIGEST
    assert digest_from_image_id("") is None
    assert digest_from_image_id("nginx@") is None


def test_finished_pods() -> None:
    assert is_finished(pod(status={"phase": "Succeeded"}))
    assert is_finished({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert not is_finished(pod())
