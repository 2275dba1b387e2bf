"""The start-up prime replaces kopf's indexes (state/relist.py, handlers/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kopf
import pytest

import mamori_operator.handlers  # noqa: F401  (registers the handlers with kopf)
from mamori_operator.api.kube import KubeError
from mamori_operator.state.cluster import ClusterState
from mamori_operator.state.relist import ClusterLister


class ListingKube:
    """Lists one namespace, no other kind, and ``reports`` (or raises it, when an error)."""

    def __init__(self, reports: list[dict[str, Any]] | KubeError) -> None:
        self.reports = reports
        self.paths: list[str] = []

    def list_all(
        self, path: str, *, resource: str, label_selector: str | None = None
    ) -> Iterator[dict[str, Any]]:
        self.paths.append(path)
        if resource == "vulnerabilityreports":
            if isinstance(self.reports, KubeError):
                raise self.reports
            yield from self.reports
        elif resource == "namespaces":
            yield {"metadata": {"name": "shop", "uid": "u1", "labels": {"team": "a"}}}


def report(namespace: str, owner: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"replicaset-{owner}-app",
            "namespace": namespace,
            "labels": {
                "trivy-operator.resource.kind": "ReplicaSet",
                "trivy-operator.resource.name": owner,
                "trivy-operator.container.name": "app",
            },
        },
        "report": {"summary": {"criticalCount": 1}, "vulnerabilities": []},
    }


def test_no_kopf_index_handlers_are_registered() -> None:
    """An index makes kopf hold every object's worker on one condition that wakes them all
    whenever any object is indexed: start-up work grows with the square of the objects."""
    assert list(kopf.get_default_registry()._indexing.get_all_handlers()) == []


def test_prime_reads_the_kinds_and_the_reports() -> None:
    state = ClusterState()
    kube = ListingKube([report("shop", "web-1"), report("shop", "web-2")])
    ClusterLister(kube=kube, state=state, top_findings=3).prime()  # type: ignore[arg-type]
    assert state.namespace("shop") is not None
    assert sorted(state.vulnerability_reports) == [
        ("shop", "ReplicaSet", "web-1", "app"),
        ("shop", "ReplicaSet", "web-2", "app"),
    ]


def test_prime_without_trivy_operator_installed() -> None:
    state = ClusterState()
    kube = ListingKube(KubeError(404, "NotFound", "the server could not find the resource"))
    ClusterLister(kube=kube, state=state).prime()  # type: ignore[arg-type]
    assert state.namespace("shop") is not None and state.vulnerability_reports == {}


def test_prime_fails_when_reports_cannot_be_read() -> None:
    """A refused list is not "no reports": pods judged without them would be told unscanned."""
    kube = ListingKube(KubeError(403, "Forbidden", "cannot list vulnerabilityreports"))
    with pytest.raises(KubeError, match="403"):
        ClusterLister(kube=kube, state=ClusterState()).prime()  # type: ignore[arg-type]
