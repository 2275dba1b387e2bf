"""Pods annotated from Trivy Operator VulnerabilityReports and from pipeline-written ImageScans."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mamori_operator.services import Services
from tests.integration.operator_support import (
    Cluster,
    fake_digest,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration
TRIVY = ("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports")


def vulnerability_report(
    namespace: str, *, replica_set: str, container: str, digest: str, critical: int
) -> dict[str, Any]:
    vulnerabilities = [
        {
            "vulnerabilityID": f"CVE-2026-{n:04d}",
            "resource": "libssl3",
            "installedVersion": "3.0.1",
            "fixedVersion": "3.0.9",
            "severity": "CRITICAL",
        }
        for n in range(critical)
    ] + [
        {
            "vulnerabilityID": "CVE-2025-0001",
            "resource": "zlib",
            "installedVersion": "1.3",
            "fixedVersion": "",
            "severity": "LOW",
        }
    ]
    return {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": "VulnerabilityReport",
        "metadata": {
            "name": f"replicaset-{replica_set}-{container}",
            "namespace": namespace,
            "labels": {
                "trivy-operator.resource.kind": "ReplicaSet",
                "trivy-operator.resource.name": replica_set,
                "trivy-operator.resource.namespace": namespace,
                "trivy-operator.container.name": container,
            },
        },
        "report": {
            "updateTimestamp": "2026-03-01T10:00:00Z",
            "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.61.0"},
            "registry": {"server": "ghcr.io"},
            "artifact": {"repository": "acme/web", "tag": "1.0", "digest": digest},
            "summary": {
                "criticalCount": critical,
                "highCount": 0,
                "mediumCount": 0,
                "lowCount": 1,
                "unknownCount": 0,
                "noneCount": 0,
            },
            "vulnerabilities": vulnerabilities,
        },
    }


@pytest.mark.parametrize("scanned_namespace", [("trivy-operator",)], indirect=True)
def test_trivy_reports_of_the_owning_replicaset(
    cluster: Cluster, operator: Services, scanned_namespace: str
) -> None:
    ns = scanned_namespace
    digest = fake_digest(ns)
    replica_set = "web-6d4cf56db6"
    pods = []
    for _ in range(2):  # two replicas of one ReplicaSet share its report
        pod = unique("web")
        cluster.create_pod(ns, pod, {"app": "ghcr.io/acme/web:1.0"}, owner=(replica_set, "uid-rs"))
        cluster.kubelet_reports(ns, pod, {"app": f"ghcr.io/acme/web@{digest}"})
        pods.append(pod)
    bare = unique("solo")  # same image, but Trivy files bare pods under the pod itself
    cluster.create_pod(ns, bare, {"app": "ghcr.io/acme/web:1.0"})
    cluster.kubelet_reports(ns, bare, {"app": f"ghcr.io/acme/web@{digest}"})
    for pod in [*pods, bare]:
        cluster.wait_for_scan_status(ns, pod, "unscanned")

    report = vulnerability_report(
        ns, replica_set=replica_set, container="app", digest=digest, critical=2
    )
    cluster.custom.create_namespaced_custom_object(*TRIVY[:2], ns, TRIVY[2], report)
    for pod in pods:
        annotations = cluster.wait_for_scan_status(ns, pod, "vulnerable")
        assert json.loads(annotations["mamori.io/scan-summary"])["critical"] == 2
        assert annotations["mamori.io/scanned-at"] == "2026-03-01T10:00:00Z"
    scan = wait_until(lambda: cluster.image_scan(digest.replace(":", "-")))
    assert scan["spec"]["scanner"] == "trivy-operator/0.61.0"
    assert scan["spec"]["repository"] == "ghcr.io/acme/web"
    assert scan["spec"]["findings"][0]["fixedVersion"] == "3.0.9"
    # the digest is now known to be vulnerable: the bare pod stays as its own report says
    assert cluster.pod_annotations(ns, bare)["mamori.io/scan-status"] == "unscanned"

    fixed = vulnerability_report(
        ns, replica_set=replica_set, container="app", digest=digest, critical=0
    )
    current = cluster.custom.get_namespaced_custom_object(
        *TRIVY[:2], ns, TRIVY[2], report["metadata"]["name"]
    )
    fixed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    cluster.custom.replace_namespaced_custom_object(
        *TRIVY[:2], ns, TRIVY[2], report["metadata"]["name"], fixed
    )
    for pod in pods:
        cluster.wait_for_scan_status(ns, pod, "clean")


@pytest.mark.parametrize("scanned_namespace", [("imagescan",)], indirect=True)
def test_pipeline_image_scans(cluster: Cluster, operator: Services, scanned_namespace: str) -> None:
    ns = scanned_namespace
    digest = fake_digest(ns + "ci")
    pod = unique("api")
    cluster.create_pod(ns, pod, {"api": f"registry.example.com/api@{digest}"})
    cluster.kubelet_reports(ns, pod, {"api": f"registry.example.com/api@{digest}"})
    cluster.wait_for_scan_status(ns, pod, "unscanned")

    written = cluster.write_image_scan(
        digest,
        {
            "repository": "registry.example.com/api",
            "scanner": "grype-0.80",
            "scannedAt": "2026-02-02T02:02:02Z",
            "summary": {"high": 2, "medium": 1},
            "findings": [{"id": "GHSA-xxxx", "severity": "HIGH", "package": "requests"}],
        },
    )
    annotations = cluster.wait_for_scan_status(ns, pod, "vulnerable")
    summary = json.loads(annotations["mamori.io/scan-summary"])
    assert (summary["high"], summary["medium"], summary["critical"]) == (2, 1, 0)
    assert annotations["mamori.io/scanned-at"] == "2026-02-02T02:02:02Z"
    current = cluster.image_scan(digest.replace(":", "-"))
    assert current is not None
    assert current["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    events = wait_until(lambda: cluster.events_about(ns, pod))
    assert {e.reason for e in events} == {"VulnerableImage"}


@pytest.mark.parametrize("scanned_namespace", [("trivy-operator", "imagescan")], indirect=True)
def test_providers_are_asked_in_order(
    cluster: Cluster, operator: Services, scanned_namespace: str
) -> None:
    """No Trivy report for this pod: the next provider (a pipeline's ImageScan) answers."""
    ns = scanned_namespace
    digest = fake_digest(ns + "order")
    cluster.write_image_scan(digest, {"scanner": "trivy-ci", "summary": {"low": 3}})
    pod = unique("job")
    cluster.create_pod(ns, pod, {"main": "registry.example.com/job:2"})
    cluster.kubelet_reports(ns, pod, {"main": f"registry.example.com/job@{digest}"})
    annotations = cluster.wait_for_scan_status(ns, pod, "clean")
    assert json.loads(annotations["mamori.io/scan-summary"])["low"] == 3
    assert "mamori.io/scanned-at" not in annotations  # the pipeline did not say when


def test_an_invalid_edit_keeps_the_last_valid_spec_for_scans_and_audit(
    cluster: Cluster, operator: Services
) -> None:
    """A typo in an edit must not strip scan annotations cluster-wide or drop the audit: the
    last valid spec stays in effect (as in the webhook) and the status names the bad field."""
    ns, policy = unique("typo"), unique("typo")
    cluster.create_namespace(ns, {"mamori-test": ns})
    spec: dict[str, Any] = {
        "enforcement": "Audit",
        "namespaceSelector": {"matchLabels": {"mamori-test": ns}},
        "imageScan": {"providers": ["imagescan"], "severityThreshold": "HIGH"},
    }
    try:
        cluster.apply_policy(policy, spec)
        digest = fake_digest(ns)
        cluster.write_image_scan(digest, {"scanner": "trivy-ci", "summary": {"low": 1}})
        pod = unique("app")
        cluster.create_pod(ns, pod, {"app": f"registry.example.com/app@{digest}"}, security="")
        cluster.kubelet_reports(ns, pod, {"app": f"registry.example.com/app@{digest}"})
        cluster.wait_for_scan_status(ns, pod, "clean")

        def audited() -> dict[str, Any] | None:
            status = cluster.policy(policy).get("status") or {}
            return status if (status.get("violations") or {}).get("pods") == 1 else None

        wait_until(audited, message="the audit to count the pod")

        typo = {**spec, "networkPolicy": {"allowedEgressCIDRs": ["10.0.0.1/8"]}}  # host bits
        cluster.apply_policy(policy, typo)

        def invalid() -> dict[str, Any] | None:
            status = cluster.policy(policy).get("status") or {}
            ready = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
            )
            if status.get("observedGeneration") == 2 and ready.get("reason") == "InvalidSpec":
                return {"status": status, "ready": ready}
            return None

        seen = wait_until(invalid, message="the status to report the invalid spec")
        assert "spec.networkPolicy.allowedEgressCIDRs[0]" in seen["ready"]["message"]
        assert "generation 1" in seen["ready"]["message"]
        # the edit was fanned out before the status was written: a strip would have happened
        passes = operator.housekeeper.passes
        wait_until(lambda: operator.housekeeper.passes >= passes + 2, message="two passes")
        assert cluster.pod_annotations(ns, pod).get("mamori.io/scan-status") == "clean"
        assert (cluster.policy(policy)["status"].get("violations") or {}).get("pods") == 1
    finally:
        cluster.delete_policy(policy)
        cluster.delete_namespace(ns)
