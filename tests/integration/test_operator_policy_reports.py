"""PolicyReports on the real API server: what ``kubectl get polr`` shows, per workload, capped,
written only on change, and never touching another tool's reports.

The report CRDs are the chart's own (rendered by the real helm), installed before the operator
starts. Pods are created straight through the API (no webhook runs here): a pod that breaks a
Warn policy is exactly what the webhook would have admitted with a warning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from mamori_operator.reports.writer import PolicyReporter
from mamori_operator.services import Services
from tests.chart.helm import Helm, documents
from tests.cluster_fixtures import Kubectl
from tests.integration.operator_support import Cluster, unique, wait_until

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "wgpolicyk8s.io", "v1alpha2", "policyreports"
MAX_RESULTS = 4
REPORTS_SHOWN_WITHIN = 10.0  # seconds from the pod's creation to `kubectl get polr` showing it


@pytest.fixture(scope="module")
def cluster(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """mamori's CRDs and the chart's PolicyReport CRDs, serving before the operator starts."""
    cluster = Cluster.connect(Path(kubeconfig))
    cluster.install_crds()
    helm = Helm.find(tmp_path_factory.mktemp("helm-home"))
    rendered = helm.template(
        settings={"policyReports.enabled": "true"},
        extra=(
            "--show-only=templates/policyreport-crd.yaml",
            "--show-only=templates/clusterpolicyreport-crd.yaml",
        ),
    ).stdout
    for body in documents(rendered):
        cluster.install_crd(body)
    return cluster


@pytest.fixture(scope="module")
def operator_overrides() -> dict[str, Any]:
    return {"policy_reports": True, "policy_report_max_results": MAX_RESULTS}


def warn_policy(cluster: Cluster, made: dict[str, list[str]], label: str) -> str:
    """A Warn policy at baseline over the namespaces labelled ``mamori-test=<label>``."""
    name = unique("warn")
    made["policies"].append(name)
    cluster.apply_policy(
        name,
        {
            "enforcement": "Warn",
            "podSecurity": "baseline",
            "namespaceSelector": {"matchLabels": {"mamori-test": label}},
        },
    )
    return name


def namespace(cluster: Cluster, made: dict[str, list[str]], label: str) -> str:
    name = unique("polr")
    cluster.create_namespace(name, {"mamori-test": label})
    made["namespaces"].append(name)
    return name


def create_pod(
    cluster: Cluster,
    ns: str,
    name: str,
    *,
    privileged: bool,
    labels: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": ns, "labels": dict(labels or {})}
    if owner is not None:
        metadata["ownerReferences"] = [{**owner, "controller": True}]
    context = {"privileged": True} if privileged else {"allowPrivilegeEscalation": False}
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [
                {"name": "app", "image": "registry.example/app:1.0", "securityContext": context}
            ]
        },
    }
    return cluster.api.sanitize_for_serialization(  # type: ignore[no-any-return]
        cluster.core.create_namespaced_pod(ns, body)
    )


def report(cluster: Cluster, ns: str, name: str = "mamori") -> dict[str, Any] | None:
    try:
        return cluster.custom.get_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, ns, PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def wait_report(
    cluster: Cluster, ns: str, *, results: int | None = None, message: str
) -> dict[str, Any]:
    """mamori's report of ``ns`` once it exists (with ``results`` results, when given)."""

    def ready() -> dict[str, Any]:
        body = report(cluster, ns) or {}
        if body and results is not None and len(body.get("results") or []) != results:
            return {}
        return body

    return wait_until(ready, message=message)


def get_polr(kubectl: Kubectl, ns: str) -> str:
    result = kubectl("get", "polr", "-n", ns)
    return (result.stdout + result.stderr).strip()


def polr_rows(kubectl: Kubectl, ns: str) -> list[list[str]]:
    """`kubectl get polr -n NS` as rows of columns (header excepted)."""
    lines = kubectl("get", "polr", "-n", ns).stdout.strip().splitlines()
    return [line.split() for line in lines[1:]]


def report_writes(services: Services) -> dict[str, float]:
    """The operator's API writes to PolicyReports so far, by verb."""
    registry = services.metrics.registry
    counts = {}
    for verb in ("post", "patch", "put", "delete"):
        value = registry.get_sample_value(
            "mamori_operator_api_requests_total", {"verb": verb, "resource": PLURAL}
        )
        counts[verb] = value or 0.0
    return counts


def test_a_pod_admitted_under_warn_is_reported_and_cleared_when_fixed(
    cluster: Cluster, operator: Services, made: dict[str, list[str]], kubectl: Kubectl
) -> None:
    label = unique("t")
    ns = namespace(cluster, made, label)
    policy = warn_policy(cluster, made, label)
    started = time.monotonic()
    bad = create_pod(cluster, ns, "bad", privileged=True)

    rows = wait_until(
        lambda: polr_rows(kubectl, ns), timeout=REPORTS_SHOWN_WITHIN, message="polr listed"
    )
    elapsed = time.monotonic() - started
    print(f"\n$ kubectl get polr -n {ns}   # {elapsed:.1f}s after the pod\n{get_polr(kubectl, ns)}")
    # NAME PASS FAIL WARN ERROR SKIP AGE
    assert [row[:6] for row in rows] == [["mamori", "0", "0", "1", "0", "0"]]
    body = json.loads(kubectl("get", "polr", "mamori", "-n", ns, "-o", "json").stdout)
    assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mamori"
    [result] = body["results"]
    assert {k: result[k] for k in ("source", "policy", "rule", "result", "severity")} == {
        "source": "mamori",
        "policy": policy,
        "rule": "privileged",
        "result": "warn",
        "severity": "high",
    }
    assert result["resources"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "bad",
            "namespace": ns,
            "uid": bad["metadata"]["uid"],
        }
    ]
    assert result["properties"] == {
        "field": "spec.containers[0].securityContext.privileged",
        "container": "app",
        "enforcement": "Warn",
    }
    assert "privileged" in result["message"]

    # fixed: the bad pod replaced by a compliant one
    cluster.core.delete_namespaced_pod("bad", ns, grace_period_seconds=0)
    create_pod(cluster, ns, "good", privileged=False)
    wait_until(lambda: report(cluster, ns) is None, message="report deleted once the ns is clean")
    assert "No resources found" in get_polr(kubectl, ns)


def test_a_deployments_pods_are_one_workload_and_go_with_their_policy(
    cluster: Cluster, operator: Services, made: dict[str, list[str]], kubectl: Kubectl
) -> None:
    label = unique("t")
    ns = namespace(cluster, made, label)
    policy = warn_policy(cluster, made, label)
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6b7c9", "uid": "rs-uid"}
    for name in ("web-6b7c9-a", "web-6b7c9-b"):
        create_pod(
            cluster,
            ns,
            name,
            privileged=True,
            labels={"app": "web", "pod-template-hash": "6b7c9"},
            owner=owner,
        )
    body = wait_report(cluster, ns, message="report of the Deployment")
    shown = kubectl("get", "polr", "mamori", "-n", ns, "-o", "yaml").stdout
    print(f"\n$ kubectl get polr mamori -n {ns} -o yaml\n{shown}")
    [result] = body["results"]
    assert result["resources"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": ns}
    ]
    assert (
        result["properties"]["field"]
        == "spec.template.spec.containers[0].securityContext.privileged"
    )
    assert body["summary"]["warn"] == 1

    cluster.delete_policy(policy)
    wait_until(lambda: report(cluster, ns) is None, message="report deleted with the policy")


def test_a_report_over_the_cap_lists_the_worst_and_says_so(
    cluster: Cluster, operator: Services, made: dict[str, list[str]], kubectl: Kubectl
) -> None:
    label = unique("t")
    ns = namespace(cluster, made, label)
    warn_policy(cluster, made, label)
    pods = 7
    for index in range(pods):
        create_pod(cluster, ns, f"bad-{index}", privileged=True)

    def capped() -> dict[str, Any]:
        body = report(cluster, ns) or {}
        return body if body and body["summary"]["warn"] == pods else {}

    body = wait_until(capped, message=f"report counting {pods} results")
    print(f"\n$ kubectl get polr -n {ns}\n{get_polr(kubectl, ns)}")
    shown = kubectl(
        "get",
        "polr",
        "mamori",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.annotations}{'\\n'}{.results[-1]}",
    ).stdout
    print(f"$ kubectl get polr mamori -n {ns} -o jsonpath=...annotations, last result\n{shown}")
    results = body["results"]
    assert len(results) == MAX_RESULTS + 1
    notice = results[-1]
    assert (notice["rule"], notice["result"]) == ("report-truncated", "skip")
    assert notice["properties"]["listed"] == str(MAX_RESULTS)
    assert notice["properties"]["total"] == str(pods)
    assert body["metadata"]["annotations"]["mamori.io/policy-report-truncated"] == (
        f"listed {MAX_RESULTS} of {pods} results"
    )
    assert body["summary"] == {"pass": 0, "fail": 0, "warn": pods, "error": 0, "skip": 1}
    assert [row[:6] for row in polr_rows(kubectl, ns)] == [
        ["mamori", "0", "0", str(pods), "0", "1"]
    ]


def foreign_report(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PolicyReport",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kyverno"}},
        "summary": {"pass": 3, "fail": 0, "warn": 0, "error": 0, "skip": 0},
        "results": [
            {"source": "kyverno", "policy": "require-labels", "result": "pass", "scored": True}
        ],
    }
    return cluster.custom.create_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, ns, PLURAL, body
    )


def test_other_tools_reports_are_left_alone(
    cluster: Cluster, operator: Services, made: dict[str, list[str]], kubectl: Kubectl
) -> None:
    label = unique("t")
    ns, clash = namespace(cluster, made, label), namespace(cluster, made, label)
    warn_policy(cluster, made, label)
    theirs = foreign_report(cluster, ns, "kyverno-polr")
    same_name = foreign_report(cluster, clash, "mamori")
    create_pod(cluster, ns, "bad", privileged=True)
    create_pod(cluster, clash, "bad", privileged=True)

    wait_report(cluster, ns, message="mamori's report beside the other")
    reporter = operator.reports
    assert reporter is not None
    wait_until(lambda: clash in reporter.left_alone, message="the clash seen")
    print(f"\n$ kubectl get polr -n {ns}\n{get_polr(kubectl, ns)}")
    cluster.core.delete_namespaced_pod("bad", ns, grace_period_seconds=0)
    wait_until(lambda: report(cluster, ns) is None, message="mamori's report deleted")

    for where, before in ((ns, theirs), (clash, same_name)):
        after = report(cluster, where, before["metadata"]["name"])
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["results"] == before["results"]


def test_nothing_is_written_while_nothing_changes(
    cluster: Cluster, operator: Services, made: dict[str, list[str]]
) -> None:
    label = unique("t")
    ns = namespace(cluster, made, label)
    warn_policy(cluster, made, label)
    create_pod(cluster, ns, "bad", privileged=True)
    first = wait_report(cluster, ns, message="report written")
    reporter = operator.reports
    assert reporter is not None

    def passes_later(count: int) -> None:
        housekeeper = operator.housekeeper  # its pass refreshes the reports
        target = housekeeper.passes + count
        wait_until(lambda: housekeeper.passes >= target, message=f"{count} reporter passes")

    passes_later(2)
    settled = report_writes(operator)
    # a pod event that changes nothing the report says, then several passes
    cluster.core.patch_namespaced_pod("bad", ns, {"metadata": {"labels": {"touched": "yes"}}})
    create_pod(cluster, ns, "good", privileged=False)
    passes_later(5)
    assert report_writes(operator) == settled
    unchanged = report(cluster, ns)
    assert unchanged is not None
    assert unchanged["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]

    # a restarted operator (a new writer: it knows only what it lists) adopts the report as is
    restarted = PolicyReporter(
        state=operator.state,
        kube=operator.kube,
        auditor=operator.auditor,
        limits=reporter.limits,
        relist_interval=reporter.relist_interval,
    )
    assert restarted.refresh() == 0
    assert report_writes(operator) == settled

    # one more finding: exactly one write, and the first result keeps its timestamp
    create_pod(cluster, ns, "bad-too", privileged=True)
    grown = wait_report(cluster, ns, results=2, message="second result")
    passes_later(2)
    after = report_writes(operator)
    assert after == {**settled, "patch": settled["patch"] + 1}
    stamps = {r["resources"][0]["name"]: r["timestamp"] for r in grown["results"]}
    assert stamps["bad"] == first["results"][0]["timestamp"]
    print("\nPolicyReport writes by verb while nothing changed, then one change:", settled, after)
