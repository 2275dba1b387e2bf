"""The operator converges after what a real cluster does to it, and its status then says so.

Each test runs its own etcd + kube-apiserver (conftest ``private_control_plane``) and its own
operator, which reaches the API server through a :class:`~tests.integration.faults.LoopbackProxy`
that the test cuts, while the test itself talks to the API server directly. That is how a watch
misses events for real: the operator's watches are away while objects change, and the API
server then answers their resume with 410 Gone (a restarted API server's fresh watch cache, or
etcd compacted with the watch cache off), so kopf lists again, and a list never shows what was
deleted. Every wait polls with a deadline; every test ends with the cluster converged and the
policy status agreeing with the objects really there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mamori_dev.controlplane import LocalControlPlane
from mamori_operator.services import Services
from tests.cluster_fixtures import Kubectl
from tests.integration import faults
from tests.integration.operator_support import (
    Cluster,
    condition,
    fake_digest,
    operator_config,
    running_operator,
    wait_until,
)

pytestmark = pytest.mark.integration
NO_WATCH_CACHE = ("--watch-cache=false",)
CONVERGE = 60.0  # seconds: the slowest path is a re-list after the watches notice the outage


@pytest.fixture
def cluster(private_control_plane: LocalControlPlane) -> Cluster:
    """Direct API clients for the test's own control plane, with mamori's CRDs installed."""
    cluster = Cluster.connect(private_control_plane.kubeconfig)
    cluster.install_crds()
    return cluster


@pytest.fixture
def operator(cluster: Cluster, proxied_kubeconfig: Path) -> Iterator[Services]:
    """An operator that reaches the API server only through the test's proxy.

    The full resync is far away (600 s), so anything repaired within a test was repaired by the
    re-list or the retry queue, not by the periodic pass.
    """
    config = operator_config(proxied_kubeconfig, resync_interval=600.0, retry_max_delay=4.0)
    with running_operator(config) as services:
        yield services


def selected_namespaces(cluster: Cluster, label: str, count: int) -> list[str]:
    names = [f"{label}-{index}" for index in range(count)]
    for name in names:
        cluster.create_namespace(name, {"mamori-fault": label})
    return names


def network_policy_policy(cluster: Cluster, name: str, label: str) -> None:
    cluster.apply_policy(
        name,
        {"namespaceSelector": {"matchLabels": {"mamori-fault": label}}, "networkPolicy": {}},
    )


def managed_in(cluster: Cluster, namespace: str) -> set[str]:
    return {
        item.metadata.name
        for item in cluster.net.list_namespaced_network_policy(
            namespace, label_selector="app.kubernetes.io/managed-by=mamori"
        ).items
    }


def converged(cluster: Cluster, policy: str, namespaces: list[str]) -> dict[str, Any] | None:
    """The policy's status once every namespace has its NetworkPolicy and the status agrees."""
    wanted = f"mamori-{policy}"
    if any(wanted not in managed_in(cluster, ns) for ns in namespaces):
        return None
    status = cluster.policy(policy).get("status") or {}
    expected = f"{len(namespaces)}/{len(namespaces)}"
    if (status.get("networkPolicies") or {}).get("ready") != expected:
        return None
    if condition({"status": status}, "NetworkPoliciesReady").get("status") != "True":
        return None
    return status


def condition_or_empty(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def test_netpols_deleted_while_the_watch_was_away_across_an_apiserver_restart_come_back(
    private_control_plane: LocalControlPlane,
    private_kubectl: Kubectl,
    apiserver_proxy: faults.LoopbackProxy,
    cluster: Cluster,
    operator: Services,
) -> None:
    label = f"restart-{uuid.uuid4().hex[:6]}"
    namespaces = selected_namespaces(cluster, label, 6)
    network_policy_policy(cluster, label, label)
    wait_until(lambda: converged(cluster, label, namespaces), timeout=CONVERGE, message="6/6")

    apiserver_proxy.cut()
    for ns in namespaces[:3]:
        cluster.net.delete_namespaced_network_policy(f"mamori-{label}", ns)
    private_control_plane.restart_apiserver(down_for=2.0, kill=True)  # fresh watch cache
    apiserver_proxy.restore()

    status = wait_until(
        lambda: converged(cluster, label, namespaces),
        timeout=CONVERGE,
        message="the 3 NetworkPolicies deleted in the gap to be back and the status 6/6",
    )
    assert status["networkPolicies"]["inPlace"] == 6
    assert condition({"status": status}, "Ready")["status"] == "True"
    assert operator.housekeeper.resyncs >= 2  # the first pass, then the re-list
    row = private_kubectl("get", "csp", label).stdout.splitlines()[1].split()
    assert row[4] == "6/6"  # the NETWORKPOLICIES column an admin reads


@pytest.mark.parametrize("private_apiserver_args", [NO_WATCH_CACHE])
def test_a_policy_deleted_before_compaction_stops_being_enforced(
    private_control_plane: LocalControlPlane,
    apiserver_proxy: faults.LoopbackProxy,
    cluster: Cluster,
    operator: Services,
) -> None:
    label = f"compact-{uuid.uuid4().hex[:6]}"
    namespaces = selected_namespaces(cluster, label, 2)
    network_policy_policy(cluster, label, label)
    wait_until(lambda: converged(cluster, label, namespaces), timeout=CONVERGE, message="2/2")

    apiserver_proxy.cut()
    cluster.delete_policy(label)  # no garbage collector here: only the operator removes them
    private_control_plane.compact_etcd()  # the operator's resume versions are gone: 410
    apiserver_proxy.restore()

    wait_until(
        lambda: all(not managed_in(cluster, ns) for ns in namespaces),
        timeout=CONVERGE,
        message="the deleted policy's NetworkPolicies to be removed",
    )
    fresh = selected_namespaces(cluster, f"{label}-new", 1)[0]
    cluster.label_namespace(fresh, {"mamori-fault": label})
    wait_until(
        lambda: (record := operator.state.namespace(fresh)) and record.labels.get("mamori-fault"),
        timeout=CONVERGE,
        message="the operator to see the new namespace",
    )
    passes = operator.housekeeper.passes
    wait_until(lambda: operator.housekeeper.passes >= passes + 2, message="two passes")
    assert managed_in(cluster, fresh) == set()
    assert operator.state.policy_record(label) is None


def test_converged_after_a_network_cut(
    apiserver_proxy: faults.LoopbackProxy, cluster: Cluster, operator: Services
) -> None:
    label = f"cut-{uuid.uuid4().hex[:6]}"
    namespaces = selected_namespaces(cluster, label, 3)
    network_policy_policy(cluster, label, label)
    doomed = f"{label}-doomed"
    leaving_label = f"{label}-x"
    leaving = selected_namespaces(cluster, leaving_label, 1)
    network_policy_policy(cluster, doomed, leaving_label)
    wait_until(lambda: converged(cluster, label, namespaces), timeout=CONVERGE, message="3/3")
    wait_until(lambda: converged(cluster, doomed, leaving), timeout=CONVERGE, message="1/1")

    apiserver_proxy.cut()
    cluster.net.delete_namespaced_network_policy(f"mamori-{label}", namespaces[0])
    cluster.delete_policy(doomed)
    joined = f"{label}-joined"  # a namespace created during the cut
    cluster.create_namespace(joined, {"mamori-fault": label})
    cut_until = time.monotonic() + 3.0
    wait_until(  # the operator's calls fail meanwhile (connection reset by the proxy)
        lambda: time.monotonic() >= cut_until and apiserver_proxy.open_connections == 0,
        timeout=10,
        message="the cut to last 3 s",
    )
    apiserver_proxy.restore()

    everywhere = [*namespaces, joined]
    status = wait_until(
        lambda: converged(cluster, label, everywhere),
        timeout=CONVERGE,
        message="4/4 after the cut",
    )
    assert status["networkPolicies"]["desired"] == 4
    wait_until(
        lambda: not managed_in(cluster, leaving[0]),
        timeout=CONVERGE,
        message="the policy deleted during the cut to stop being enforced",
    )


def test_a_refused_apply_is_retried_within_seconds(
    private_control_plane: LocalControlPlane,
    cluster: Cluster,
    operator: Services,
) -> None:
    label = f"refuse-{uuid.uuid4().hex[:6]}"
    network_policy_policy(cluster, label, label)
    target = f"{label}-ns"
    cluster.create_namespace(target, {})
    refusal = faults.NetworkPolicyRefusal(
        kubeconfig=private_control_plane.kubeconfig,
        kubectl=private_control_plane.kubectl,
        namespace=target,
    )
    with refusal:
        cluster.label_namespace(target, {"mamori-fault": label})

        def refused() -> dict[str, Any] | None:
            status = cluster.policy(label).get("status") or {}
            network = condition_or_empty(status, "NetworkPoliciesReady")
            return status if network.get("reason") == "ApplyFailed" else None

        status = wait_until(refused, timeout=CONVERGE, message="the refusal in the status")
        network = condition_or_empty(status, "NetworkPoliciesReady")
        assert faults.REFUSAL_MESSAGE in network["message"]
        assert target in operator.reconciler.retries.pending()
    ended = time.monotonic()

    status = wait_until(
        lambda: converged(cluster, label, [target]),
        timeout=15,
        message="the NetworkPolicy to be applied by a retry, not by the next full resync",
    )
    assert time.monotonic() - ended < 10.0  # the backoff is capped at 4 s in this test
    assert condition({"status": status}, "Ready")["status"] == "True"
    assert operator.reconciler.retries.pending() == {}


@pytest.mark.parametrize("private_apiserver_args", [NO_WATCH_CACHE])
def test_pods_and_image_scans_deleted_before_compaction_are_forgotten(
    private_control_plane: LocalControlPlane,
    apiserver_proxy: faults.LoopbackProxy,
    cluster: Cluster,
    operator: Services,
) -> None:
    """A scan result deleted in the gap must not keep a pod "clean"; a pod deleted in the gap
    must not stay counted (or audited) in the status."""
    label = f"scans-{uuid.uuid4().hex[:6]}"
    namespace = selected_namespaces(cluster, label, 1)[0]
    cluster.apply_policy(
        label,
        {
            "enforcement": "Audit",
            "namespaceSelector": {"matchLabels": {"mamori-fault": label}},
            "imageScan": {"providers": ["imagescan"]},
        },
    )
    digest = fake_digest(label)
    image = f"registry.example.com/app@{digest}"
    cluster.write_image_scan(digest, {"scanner": "trivy-ci", "summary": {"low": 1}})
    cluster.create_pod(namespace, "scanned", {"app": image})
    cluster.kubelet_reports(namespace, "scanned", {"app": image})
    cluster.create_pod(namespace, "offender", {"app": image}, security="")  # breaks restricted
    cluster.wait_for_scan_status(namespace, "scanned", "clean")

    def counted(total: int, offenders: int) -> dict[str, Any] | None:
        status = cluster.policy(label).get("status") or {}
        pods, violations = status.get("pods") or {}, status.get("violations") or {}
        return status if (pods.get("total"), violations.get("pods")) == (total, offenders) else None

    wait_until(lambda: counted(2, 1), timeout=CONVERGE, message="2 pods, 1 offender")

    apiserver_proxy.cut()
    cluster.custom.delete_cluster_custom_object(
        "mamori.io", "v1alpha1", "imagescans", digest.replace(":", "-")
    )
    cluster.core.delete_namespaced_pod("offender", namespace, grace_period_seconds=0)
    private_control_plane.compact_etcd()
    apiserver_proxy.restore()

    cluster.wait_for_scan_status(namespace, "scanned", "unscanned")
    # pods are re-listed by their own feed, scan reports by the resync: the status may count
    # the offender gone one pass before it counts the new scan status
    status = wait_until(
        lambda: (s := counted(1, 0)) and s["pods"]["unscanned"] == 1 and s,
        timeout=CONVERGE,
        message="1 pod, unscanned, no offender",
    )
    assert status["pods"]["unscanned"] == 1
    assert operator.state.pod((namespace, "offender")) is None
