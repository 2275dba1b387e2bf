"""Find the pod spec inside any workload object, with the paths users will recognise.

A Deployment's pods are judged from ``spec.template``, a CronJob's from
``spec.jobTemplate.spec.template``: denying the template at ``kubectl apply`` time is far kinder
than letting the controller fail to create pods later. Pods themselves are judged too, as the
backstop for containers that other webhooks or operators inject.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from mamori.podspec import Malformed, PodContext, as_mapping


class WorkloadKind(NamedTuple):
    """Where one kind keeps its pod template, and the field paths messages use under it.

    (A named tuple, built by :func:`workload_kind`: ``mamori check`` defines it at every start,
    where a dataclass's generated methods would cost a millisecond.)
    """

    groups: frozenset[str]
    template_path: tuple[str, ...]  # path to the object holding metadata + spec of the pod
    spec_path: str
    metadata_path: str


def workload_kind(groups: frozenset[str], template_path: tuple[str, ...]) -> WorkloadKind:
    """A kind whose pod template is at ``template_path``, with the paths derived from it."""
    prefix = ".".join(template_path)
    if not prefix:
        return WorkloadKind(groups, template_path, "spec", "metadata")
    return WorkloadKind(groups, template_path, f"{prefix}.spec", f"{prefix}.metadata")


TEMPLATE = ("spec", "template")
WORKLOAD_KINDS: Mapping[str, WorkloadKind] = {
    "Pod": workload_kind(frozenset({""}), ()),
    "PodTemplate": workload_kind(frozenset({""}), ("template",)),
    "ReplicationController": workload_kind(frozenset({""}), TEMPLATE),
    "Deployment": workload_kind(frozenset({"apps", "extensions"}), TEMPLATE),
    "ReplicaSet": workload_kind(frozenset({"apps", "extensions"}), TEMPLATE),
    "StatefulSet": workload_kind(frozenset({"apps"}), TEMPLATE),
    "DaemonSet": workload_kind(frozenset({"apps", "extensions"}), TEMPLATE),
    "Job": workload_kind(frozenset({"batch"}), TEMPLATE),
    "CronJob": workload_kind(frozenset({"batch"}), ("spec", "jobTemplate", "spec", "template")),
}


class Workload(NamedTuple):
    """A workload object reduced to what the engine needs (one per admission: a named tuple)."""

    kind: str
    name: str
    namespace: str | None
    pod: PodContext


def api_group(api_version: object) -> str:
    """``apps/v1`` → ``apps``; ``v1`` → the core group ``""``."""
    if not isinstance(api_version, str) or "/" not in api_version:
        return ""
    return api_version.split("/", 1)[0]


def pod_metadata(resource: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """The pod's (or pod template's) ``metadata`` and its path; None when no pod is carried.

    Cheaper than :func:`extract_workload` (no containers, no images): for checks that only need
    labels or annotations.
    """
    kind = WORKLOAD_KINDS.get(str(resource.get("kind")))
    if kind is None or api_group(resource.get("apiVersion")) not in kind.groups:
        return None
    template, _ = _walk_to_template(resource, kind.template_path)
    return kind.metadata_path, as_mapping(template.get("metadata"))


def extract_workload(resource: Mapping[str, Any]) -> Workload | None:
    """Return the workload's pod, or None when ``resource`` is not a kind that runs pods."""
    kind_name = str(resource.get("kind"))
    kind = WORKLOAD_KINDS.get(kind_name)
    if kind is None or api_group(resource.get("apiVersion")) not in kind.groups:
        return None
    template, problems = _walk_to_template(resource, kind.template_path)
    spec_path = kind.spec_path
    spec = template.get("spec")
    if spec is not None and type(spec) is not dict and not isinstance(spec, Mapping):
        problems.append(Malformed(spec_path, "an object (the pod spec)", spec))
    metadata = as_mapping(resource.get("metadata"))
    name = metadata.get("name") or metadata.get("generateName") or ""
    namespace = metadata.get("namespace")
    pod = PodContext(
        as_mapping(spec),
        as_mapping(template.get("metadata")),
        spec_path,
        kind.metadata_path,
        tuple(problems),
    )
    return Workload(
        kind_name, str(name), namespace if isinstance(namespace, str) and namespace else None, pod
    )


def _walk_to_template(
    resource: Mapping[str, Any], path: tuple[str, ...]
) -> tuple[Mapping[str, Any], list[Malformed]]:
    """Follow ``path`` to the pod template; a step that is not an object ends the walk.

    An absent step is an empty template (nothing to judge); a step of the wrong type, such as
    ``spec.template: "x"``, is recorded so that the verdict fails closed.
    """
    node: Mapping[str, Any] = resource
    for depth, key in enumerate(path):
        value = node.get(key)
        if value is not None and type(value) is not dict and not isinstance(value, Mapping):
            field = ".".join(path[: depth + 1])
            return {}, [Malformed(field, "an object", value)]
        node = as_mapping(value)
    return node, []
