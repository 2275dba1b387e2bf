"""The start-up prime (state/relist.py): what exists before the operator starts is known before
anything is decided, without kopf's per-object index gates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes.watch
import pytest

from tests.integration.operator_support import (
    Cluster,
    fake_digest,
    operator_config,
    running_operator,
    unique,
)
from tests.integration.test_operator_scan_sources import TRIVY, vulnerability_report

pytestmark = pytest.mark.integration
SCAN_STATUS = "mamori.io/scan-status"


def scan_statuses_since(cluster: Cluster, namespace: str, version: str) -> list[Any]:
    """Every scan status the namespace's pods were given after ``version``, in order (the API
    server's watch cache replays the changes since a recent resourceVersion)."""
    seen: list[Any] = []
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        cluster.core.list_namespaced_pod,
        namespace,
        resource_version=version,
        timeout_seconds=2,
        _request_timeout=10,
    ):
        annotations = event["object"].metadata.annotations or {}
        if event["type"] == "MODIFIED" and SCAN_STATUS in annotations:
            seen.append(annotations[SCAN_STATUS])
    return seen


@pytest.mark.parametrize("scanned_namespace", [("trivy-operator",)], indirect=True)
def test_a_report_that_existed_before_the_start_decides_the_first_status(
    cluster: Cluster, kubeconfig: Path, scanned_namespace: str
) -> None:
    ns = scanned_namespace
    digest = fake_digest(ns)
    replica_set = "web-5f7d9c8b4d"
    pod = unique("web")
    cluster.create_pod(ns, pod, {"app": "ghcr.io/acme/web:1.0"}, owner=(replica_set, "uid-rs"))
    cluster.kubelet_reports(ns, pod, {"app": f"ghcr.io/acme/web@{digest}"})
    report = vulnerability_report(
        ns, replica_set=replica_set, container="app", digest=digest, critical=1
    )
    cluster.custom.create_namespaced_custom_object(*TRIVY[:2], ns, TRIVY[2], report)
    before = cluster.core.read_namespaced_pod(pod, ns).metadata.resource_version

    with running_operator(operator_config(Path(kubeconfig))) as services:
        assert services.state.namespace(ns) is not None
        assert services.state.vulnerability_report((ns, "ReplicaSet", replica_set, "app"))
        cluster.wait_for_scan_status(ns, pod, "vulnerable")

    # one patch, with the report's verdict: never "unscanned" first (a pod looked at before
    # the reports were all read would have been)
    assert scan_statuses_since(cluster, ns, before) == ["vulnerable"]
