"""API objects → the records :class:`~mamori_operator.state.cluster.ClusterState` keeps.

Shared by the watch handlers and the re-list (:mod:`~mamori_operator.state.relist`),
so that an object
means the same whichever way it arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mamori.policy import PolicyError, parse_policy
from mamori_operator.api.kube import MANAGED_BY, MANAGED_BY_LABEL
from mamori_operator.scanning.model import ScanReport
from mamori_operator.state.cluster import ImageScanRecord, NamespaceRecord, PolicyRecord


def policy_record(body: Mapping[str, Any]) -> PolicyRecord:
    metadata = body.get("metadata") or {}
    try:
        policy, error = parse_policy(body), None
    except PolicyError as problem:
        policy, error = None, str(problem)
    generation = metadata.get("generation")
    generation = generation if isinstance(generation, int) else 0
    return PolicyRecord(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        generation=generation,
        policy=policy,
        error=error,
        status=dict(body.get("status") or {}),
        valid_generation=generation if policy is not None else 0,
    )


def namespace_record(body: Mapping[str, Any]) -> NamespaceRecord:
    metadata = body.get("metadata") or {}
    phase = (body.get("status") or {}).get("phase")
    return NamespaceRecord(
        name=str(metadata.get("name", "")),
        labels=dict(metadata.get("labels") or {}),
        terminating=phase == "Terminating" or bool(metadata.get("deletionTimestamp")),
    )


def image_scan_record(body: Mapping[str, Any]) -> ImageScanRecord | None:
    """An ImageScan with a usable report, or None (nothing a pod could be judged by)."""
    spec = dict(body.get("spec") or {})
    report = ScanReport.from_spec(spec)
    if report is None:
        return None
    metadata = body.get("metadata") or {}
    managed = (metadata.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
    return ImageScanRecord(
        name=str(metadata.get("name", "")), managed=managed, spec=spec, report=report
    )
