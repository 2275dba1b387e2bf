"""Read what explaining one object needs, and turn each failed read into a message that names
the object and the namespace (or into a note, when the explanation can do without it)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from mamori.engine import uses_scans
from mamori.policy import Policy, PolicyError, parse_policy
from mamori.scans import InvalidImageScan, ScanTable, image_scan_name, scan_result_from_object
from mamori.why.cluster import Cluster, ClusterError, NotFound
from mamori.why.explain import Explanation, explain
from mamori.why.target import POD, Kind, Target
from mamori.workloads import extract_workload


def gather(cluster: Cluster, target: Target, namespace: str) -> Explanation:
    """Read the object, its namespace, the policies (and pods, scans) and explain the verdict."""
    kind, resource = read_target(cluster, target, namespace)
    notes: list[str] = []
    try:
        policy_objects = cluster.policies()
    except NotFound:
        raise ClusterError(
            "cannot list ClusterSecurityPolicies: the API server does not serve "
            "mamori.io/v1alpha1 (is mamori's CRD installed?)"
        ) from None
    except ClusterError as error:
        raise ClusterError(f"cannot list ClusterSecurityPolicies: {error}") from None
    labels = _namespace_labels(cluster, namespace, notes)
    pods = _pods(cluster, kind, resource, namespace, notes)
    scans = _scans(cluster, policy_objects, [resource, *pods], notes)
    return explain(
        resource,
        namespace=namespace,
        namespace_labels=labels,
        policy_objects=policy_objects,
        scans=scans,
        pods=pods,
        notes=notes,
    )


def read_target(cluster: Cluster, target: Target, namespace: str) -> tuple[Kind, dict[str, Any]]:
    """The object itself: the first of the target's kinds that has one by that name."""
    for kind in target.kinds:
        try:
            return kind, cluster.get(kind.path(namespace, target.name))
        except NotFound:
            continue
        except ClusterError as error:
            raise ClusterError(
                f'cannot read {kind.name.lower()} "{target.name}" in namespace "{namespace}": '
                f"{error}"
            ) from None
    kinds = " or ".join(kind.name.lower() for kind in target.kinds)
    raise ClusterError(f'{kinds} "{target.name}" not found in namespace "{namespace}"')


def label_selector(selector: object) -> str | None:
    """A LabelSelector object as the ``labelSelector`` query parameter; None when it has none."""
    if not isinstance(selector, Mapping):
        return None
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": f"{key}",
                "DoesNotExist": f"!{key}",
            }.get(str(operator), "")
        )
    joined = ",".join(term for term in terms if term)
    return joined or None


def _namespace_labels(cluster: Cluster, namespace: str, notes: list[str]) -> dict[str, str] | None:
    try:
        found = cluster.namespace(namespace)
    except ClusterError as error:
        notes.append(f'cannot read namespace "{namespace}" ({error}): selectors see its name only')
        return None
    labels = (found.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _pods(
    cluster: Cluster, kind: Kind, resource: Mapping[str, Any], namespace: str, notes: list[str]
) -> list[dict[str, Any]]:
    """The pods a workload selects now (none for a Pod, or a kind without ``spec.selector``)."""
    spec = resource.get("spec")
    selector = label_selector(spec.get("selector")) if isinstance(spec, Mapping) else None
    if kind is POD or selector is None:
        return []
    try:
        return sorted(
            cluster.pods(namespace, selector), key=lambda p: str(p.get("metadata", {}).get("name"))
        )
    except ClusterError as error:
        notes.append(f'cannot list its pods in namespace "{namespace}": {error}')
        return []


def _scans(
    cluster: Cluster,
    policy_objects: Iterable[Mapping[str, Any]],
    resources: Iterable[Mapping[str, Any]],
    notes: list[str],
) -> ScanTable | None:
    """The ImageScans of the images' digests, when some policy judges scans; else None."""
    if not uses_scans([p for p in map(_parsed, policy_objects) if p is not None]):
        return None
    digests = sorted(
        {
            reference.digest
            for workload in map(extract_workload, resources)
            if workload is not None
            for _, _, reference in workload.pod.images
            if reference.digest is not None
        }
    )
    results = {}
    for digest in digests:
        try:
            found = cluster.image_scan(image_scan_name(digest))
        except ClusterError as error:
            notes.append(f"image-vulnerabilities not run: cannot read ImageScans: {error}")
            return None
        if found is None:
            continue
        try:
            results[digest] = scan_result_from_object(found)
        except InvalidImageScan as error:
            notes.append(f"ImageScan {image_scan_name(digest)} is invalid and ignored: {error}")
    return ScanTable(results, datetime.datetime.now(datetime.UTC))


def _parsed(obj: Mapping[str, Any]) -> Policy | None:
    try:
        return parse_policy(obj)
    except PolicyError:
        return None
