"""Find the pod spec inside any workload object, with the paths users will recognise.

A Deployment's pods are judged from ``spec.template``, a CronJob's from
``spec.jobTemplate.spec.template``: denying the template at ``kubectl apply`` time is far kinder
than letting the controller fail to create pods later. Pods themselves are judged too, as the
backstop for containers that other webhooks or operators inject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mamori.podspec import PodContext, as_mapping


@dataclass(frozen=True, slots=True)
class WorkloadKind:
    """Where one kind keeps its pod template."""

    groups: frozenset[str]
    template_path: tuple[str, ...]  # path to the object holding metadata + spec of the pod


TEMPLATE = ("spec", "template")
WORKLOAD_KINDS: Mapping[str, WorkloadKind] = {
    "Pod": WorkloadKind(frozenset({""}), ()),
    "PodTemplate": WorkloadKind(frozenset({""}), ("template",)),
    "ReplicationController": WorkloadKind(frozenset({""}), TEMPLATE),
    "Deployment": WorkloadKind(frozenset({"apps", "extensions"}), TEMPLATE),
    "ReplicaSet": WorkloadKind(frozenset({"apps", "extensions"}), TEMPLATE),
    "StatefulSet": WorkloadKind(frozenset({"apps"}), TEMPLATE),
    "DaemonSet": WorkloadKind(frozenset({"apps", "extensions"}), TEMPLATE),
    "Job": WorkloadKind(frozenset({"batch"}), TEMPLATE),
    "CronJob": WorkloadKind(frozenset({"batch"}), ("spec", "jobTemplate", "spec", "template")),
}


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload object reduced to what the engine needs."""

    kind: str
    name: str
    namespace: str | None
    pod: PodContext


def api_group(api_version: object) -> str:
    """``apps/v1`` → ``apps``; ``v1`` → the core group ``""``."""
    if not isinstance(api_version, str) or "/" not in api_version:
        return ""
    return api_version.split("/", 1)[0]


def is_workload(resource: Mapping[str, Any]) -> bool:
    kind = WORKLOAD_KINDS.get(str(resource.get("kind")))
    return kind is not None and api_group(resource.get("apiVersion")) in kind.groups


def extract_workload(resource: Mapping[str, Any]) -> Workload | None:
    """Return the workload's pod, or None when ``resource`` is not a kind that runs pods."""
    kind_name = str(resource.get("kind"))
    kind = WORKLOAD_KINDS.get(kind_name)
    if kind is None or api_group(resource.get("apiVersion")) not in kind.groups:
        return None
    template: Mapping[str, Any] = resource
    for key in kind.template_path:
        template = as_mapping(template.get(key))
    prefix = ".".join(kind.template_path)
    metadata = as_mapping(resource.get("metadata"))
    name = metadata.get("name") or metadata.get("generateName") or ""
    namespace = metadata.get("namespace")
    return Workload(
        kind=kind_name,
        name=str(name),
        namespace=namespace if isinstance(namespace, str) and namespace else None,
        pod=PodContext(
            spec=as_mapping(template.get("spec")),
            metadata=as_mapping(template.get("metadata")),
            spec_path=f"{prefix}.spec" if prefix else "spec",
            metadata_path=f"{prefix}.metadata" if prefix else "metadata",
        ),
    )
