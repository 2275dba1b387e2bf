"""Builders for the webhook tests: AdmissionReviews as the API server sends them, and policies.

The pods start from one that satisfies the restricted Pod Security Standard and the trusted
registries below, so each test changes exactly the thing it is about.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

DIGEST = "sha256:" + "a" * 64
TRUSTED_IMAGE = f"ghcr.io/acme/app@{DIGEST}"
TRUSTED_REGISTRY = TRUSTED_IMAGE.rsplit("/", 1)[0]  # what a policy trusts for TRUSTED_IMAGE
UNTRUSTED_IMAGE = f"docker.io/evil/miner@{DIGEST}"

COMPLIANT_POD_SPEC: dict[str, Any] = {
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "containers": [
        {
            "name": "app",
            "image": TRUSTED_IMAGE,
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": True,
            },
        }
    ],
}

# kind → (group, version, path from the object to the pod template; () = the object is a pod)
WORKLOAD_KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Pod": ("", "v1", ()),
    "PodTemplate": ("", "v1", ("template",)),
    "ReplicationController": ("", "v1", ("spec", "template")),
    "Deployment": ("apps", "v1", ("spec", "template")),
    "ReplicaSet": ("apps", "v1", ("spec", "template")),
    "StatefulSet": ("apps", "v1", ("spec", "template")),
    "DaemonSet": ("apps", "v1", ("spec", "template")),
    "Job": ("batch", "v1", ("spec", "template")),
    "CronJob": ("batch", "v1", ("spec", "jobTemplate", "spec", "template")),
}


def pod_spec(*images: str) -> dict[str, Any]:
    """The compliant spec with one container per image (app, app-1, …)."""
    spec = copy.deepcopy(COMPLIANT_POD_SPEC)
    template = spec["containers"][0]
    spec["containers"] = [
        {**copy.deepcopy(template), "name": "app" if i == 0 else f"app-{i}", "image": image}
        for i, image in enumerate(images or (TRUSTED_IMAGE,))
    ]
    return spec


def workload(kind: str, *, name: str = "web", spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``kind`` object whose pod template carries ``spec``."""
    group, version, path = WORKLOAD_KINDS[kind]
    pod = {"metadata": {"labels": {"app": name}}, "spec": spec or pod_spec()}
    obj: dict[str, Any] = {
        "apiVersion": f"{group}/{version}" if group else version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "shop"},
    }
    if not path:
        obj["spec"] = pod["spec"]
        return obj
    node = obj
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = pod
    return obj


def review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    namespace: str = "shop",
    old: dict[str, Any] | None = None,
    sub_resource: str | None = None,
    dry_run: bool = False,
    kind: str | None = None,
) -> dict[str, Any]:
    """An admission.k8s.io/v1 AdmissionReview for ``obj`` as the API server would send it."""
    kind = kind or (obj or old or {}).get("kind", "Pod")
    group, version, _ = WORKLOAD_KINDS.get(kind, ("", "v1", ()))
    name = ((obj or old or {}).get("metadata") or {}).get("name", "")
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": None,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def policy_document(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
