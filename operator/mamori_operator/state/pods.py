"""A pod as the operator keeps it: images with their digests, the owning workload, our annotations.

The digest of a running image is what the kubelet reports in ``status.containerStatuses[]
.imageID`` (``repo@sha256:…``); before the container starts, only an image pinned by digest in
the spec has one. A bare ``sha256:…`` imageID is a local image ID, not a registry digest, and
is ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from mamori.images import InvalidReference, parse_reference
from mamori.podspec import CONTAINER_LISTS
from mamori_operator.scanning.model import ANNOTATIONS, ImageRef
from mamori_operator.state.cluster import PodRecord, encode_body

STATUS_LISTS: Mapping[str, str] = {
    "initContainers": "initContainerStatuses",
    "containers": "containerStatuses",
    "ephemeralContainers": "ephemeralContainerStatuses",
}
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
OURS = frozenset(ANNOTATIONS)


def pod_record(body: Mapping[str, Any]) -> PodRecord:
    """What the operator keeps of a pod. Strings that many pods share (namespace, owner, image,
    container names, digests) are interned: one copy for all the replicas of a workload.

    The operator's own scan-status annotations are kept in ``annotations``, not in the encoded
    body: no rule reads them, and the audit keys its verdicts on the body's bytes
    (:func:`~mamori_operator.status.audit.judged_inputs`), which our own patch then leaves
    as they were."""
    metadata = body.get("metadata") or {}
    name = str(metadata.get("name", ""))
    owner_kind, owner_name = owner_of(metadata)
    annotations = metadata.get("annotations") or {}
    return PodRecord(
        namespace=sys.intern(str(metadata.get("namespace", ""))),
        name=name,
        uid=str(metadata.get("uid", "")),
        resource_version=str(metadata.get("resourceVersion", "")),
        owner_kind=sys.intern(owner_kind),
        owner_name=sys.intern(owner_name),
        images=pod_images(body),
        annotations={
            sys.intern(k): sys.intern(str(annotations[k])) for k in ANNOTATIONS if k in annotations
        },
        encoded_body=encode_body(
            {
                "apiVersion": body.get("apiVersion", "v1"),
                "kind": body.get("kind", "Pod"),
                "metadata": {
                    "name": name,
                    "namespace": metadata.get("namespace"),
                    "labels": dict(metadata.get("labels") or {}),
                    "annotations": {k: v for k, v in annotations.items() if k not in OURS},
                },
                "spec": body.get("spec") or {},
            }
        ),
    )


def owner_of(metadata: Mapping[str, Any]) -> tuple[str, str]:
    """The pod's controller (kind, name), or ("Pod", its own name) for a bare pod."""
    for reference in metadata.get("ownerReferences") or []:
        if isinstance(reference, Mapping) and reference.get("controller"):
            return str(reference.get("kind", "")), str(reference.get("name", ""))
    return "Pod", str(metadata.get("name", ""))


def pod_images(body: Mapping[str, Any]) -> tuple[ImageRef, ...]:
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    images: list[ImageRef] = []
    for list_name in CONTAINER_LISTS:
        reported = {
            s.get("name"): s
            for s in status.get(STATUS_LISTS[list_name]) or []
            if isinstance(s, Mapping)
        }
        for container in spec.get(list_name) or []:
            if not isinstance(container, Mapping):
                continue
            name = str(container.get("name", ""))
            image = str(container.get("image", ""))
            digest = digest_from_image_id(str((reported.get(name) or {}).get("imageID") or ""))
            digest = digest or pinned(image)
            images.append(
                ImageRef(
                    container=sys.intern(name),
                    image=sys.intern(image),
                    digest=sys.intern(digest) if digest else None,
                )
            )
    return tuple(images)


def digest_from_image_id(image_id: str) -> str | None:
    """``docker-pullable://repo@sha256:ab…`` or ``repo@sha256:ab…`` → ``sha256:ab…``."""
    _, at, digest = image_id.rpartition("@")
    if not at or ":" not in digest:
        return None
    return digest


def pinned(image: str) -> str | None:
    try:
        return parse_reference(image).digest
    except InvalidReference:
        return None


def is_finished(body: Mapping[str, Any]) -> bool:
    """Completed and failed pods run nothing: no audit, no scan status to keep fresh."""
    phase = (body.get("status") or {}).get("phase")
    return phase in FINISHED_PHASES or bool((body.get("metadata") or {}).get("deletionTimestamp"))
