"""Which workload a pod belongs to, from what the pod itself says: no API call per pod.

A pod's controller is in its ``ownerReferences``. A ReplicaSet made by a Deployment is named
``<deployment>-<pod-template-hash>`` and stamps that hash on its pods' ``pod-template-hash``
label, so the Deployment is known from the pod alone. A Job made by a CronJob is not mapped to
the CronJob: its name (``<cronjob>-<minutes>``) is a convention that a hand-made Job can match
too, and only a GET of the Job (its own ownerReferences) would tell; the Job is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mamori.workloads import WORKLOAD_KINDS
from mamori_operator.state.cluster import PodRecord

TEMPLATE_HASH_LABEL = "pod-template-hash"
API_VERSIONS: Mapping[str, str] = {
    "Pod": "v1",
    "ReplicationController": "v1",
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """The object a result is about. ``uid`` is known for a bare pod only (the pod record keeps
    the owner's kind and name, not its uid); ``api_version`` is empty for an unknown owner kind.
    """

    kind: str
    name: str
    api_version: str = ""
    uid: str = ""

    def reference(self, namespace: str | None) -> dict[str, Any]:
        """An ObjectReference, with only the fields known."""
        reference: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.api_version:
            reference["apiVersion"] = self.api_version
        if namespace:
            reference["namespace"] = namespace
        if self.uid:
            reference["uid"] = self.uid
        return reference

    def field_path(self, pod_field: str) -> str:
        """A field path of the pod as a path in this workload (``spec.template.spec…``).

        The webhook names fields the same way when it judges the workload itself; an owner of
        a kind mamori does not know keeps the pod's path.
        """
        kind = WORKLOAD_KINDS.get(self.kind)
        if kind is None or not kind.template_path or not pod_field:
            return pod_field
        return ".".join(kind.template_path) + "." + pod_field


def workload_of(pod: PodRecord) -> WorkloadRef:
    """The workload that owns ``pod``: its controller (a Deployment for a Deployment's
    ReplicaSet), or the pod itself when it has none."""
    kind, name = pod.owner_kind, pod.owner_name
    if kind == "Pod" or not kind or not name:
        return WorkloadRef("Pod", pod.name, "v1", pod.uid)
    if kind == "ReplicaSet":
        deployment = deployment_of(name, _labels(pod))
        if deployment is not None:
            return WorkloadRef("Deployment", deployment, API_VERSIONS["Deployment"])
    return WorkloadRef(kind, name, API_VERSIONS.get(kind, ""))


def deployment_of(replica_set: str, pod_labels: Mapping[str, Any]) -> str | None:
    """The Deployment that made ``replica_set``, by the ``<name>-<pod-template-hash>`` rule."""
    template_hash = pod_labels.get(TEMPLATE_HASH_LABEL)
    if not isinstance(template_hash, str) or not template_hash:
        return None
    suffix = "-" + template_hash
    if not replica_set.endswith(suffix) or len(replica_set) == len(suffix):
        return None
    return replica_set[: -len(suffix)]


def _labels(pod: PodRecord) -> Mapping[str, Any]:
    metadata = pod.body.get("metadata") or {}
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}
