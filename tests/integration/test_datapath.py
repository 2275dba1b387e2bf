"""mamori's NetworkPolicies enforced on a real datapath: real pods, real packets, real drops.

A local cluster with one real node, kube-proxy, CoreDNS as kube-dns and kube-router's firewall
as the policy engine (datapath_support.py); the operator runs in-process, as in the other
operator tests, and writes the NetworkPolicies. Every "blocked" case in the tables below has an
"allowed" one from the same source or to the same target, so an engine that enforces nothing,
and one that drops everything, both fail.

The namespaces, one per role (``dp`` label → policy):

=========  ==============================================================================
default-a  ``dp=default``: the policy's defaults (deny both ways, DNS and same namespace open)
default-b  ``dp=default``: a second namespace of the same policy
exempt     ``dp=default`` but in the policy's exemptNamespaces
open       ``dp=open``: no same-namespace, egress to 169.254.169.0/24 and to namespaces labelled
           ``dp-role=egress-target``, ingress from ``dp-role=ingress-source``
ingress    ``dp=ingress``: defaultDeny [Ingress] only (egress open but for the metadata
           endpoint)
free       unselected
target     unselected, ``dp-role=egress-target``
source     unselected, ``dp-role=ingress-source``
=========  ==============================================================================
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.helpers import wait_for
from tests.integration.datapath_support import (
    COREDNS_HEALTH_PORT,
    HTTP_PORT,
    KUBE_DNS_IP,
    KUBE_DNS_NAME,
    KUBE_ROUTER,
    METADATA_IP,
    METADATA_NEIGHBOUR_IP,
    METADATA_PORT,
    TRANSFER_METADATA,
    DatapathCluster,
    Pod,
)
from tests.integration.operator_support import Cluster, unique

pytestmark = pytest.mark.integration
ENGINE_VERSION = "v2.1.0"  # tools/netpol/go.mod
ENFORCED_TIMEOUT = 60.0
GAP_PROBE_TIMEOUT = 0.05  # a handshake on the local bridge takes well under a millisecond
METADATA_BODY = "instance-metadata"
# The pods of each namespace role; each serves its own name over HTTP and sends probes.
PODS = {
    "default-a": ("a1", "a2"),
    "default-b": ("b1",),
    "exempt": ("e1",),
    "open": ("c1", "c2"),
    "ingress": ("d1",),
    "free": ("f1",),
    "target": ("t1",),
    "source": ("s1",),
}


def test_engine_reports_the_pin() -> None:
    result = subprocess.run(
        [str(KUBE_ROUTER), "--version"], capture_output=True, text=True, check=True
    )
    output = result.stdout + result.stderr  # it prints through its logger
    assert f" version {ENGINE_VERSION}, " in output, output


@dataclass(frozen=True)
class Scene:
    """What the module set up: the cluster, the namespace of each role, the running pods."""

    datapath: DatapathCluster
    kube: Cluster
    namespaces: dict[str, str]  # role -> namespace name
    pods: dict[str, Pod]  # pod name -> pod
    policies: dict[str, str]  # role of the policy ("default", "open", "ingress") -> name


@pytest.fixture(scope="module")
def datapath() -> Iterator[DatapathCluster]:
    with DatapathCluster() as running:
        try:
            yield running
        except BaseException:
            print(running.log_tails())
            raise


@pytest.fixture(scope="module")
def kubeconfig(datapath: DatapathCluster) -> Path:
    """This module's cluster, for the shared ``cluster`` and ``operator`` fixtures."""
    return datapath.kubeconfig


@pytest.fixture(scope="module")
def scene(datapath: DatapathCluster, cluster: Cluster, operator: Any) -> Scene:
    run = unique("dp")
    labels = {
        "default-a": {"dp": f"default-{run}"},
        "default-b": {"dp": f"default-{run}"},
        "exempt": {"dp": f"default-{run}"},
        "open": {"dp": f"open-{run}"},
        "ingress": {"dp": f"ingress-{run}"},
        "free": {},
        "target": {"dp-role": f"egress-target-{run}"},
        "source": {"dp-role": f"ingress-source-{run}"},
    }
    namespaces = {role: f"{role}-{run}" for role in PODS}
    for role, name in namespaces.items():
        cluster.create_namespace(name, labels[role])
    pods = {
        pod: datapath.run_server(namespaces[role], pod, {"app": pod})
        for role, names in PODS.items()
        for pod in names
    }
    # Open before any policy: the engine is not dropping everything.
    for source, target in (("a1", "b1"), ("f1", "c1"), ("c1", "f1")):
        assert datapath.fetch(pods[source], pods[target].ip) == f"{target}\n"
    assert datapath.fetch(pods["c1"], METADATA_IP, METADATA_PORT) == f"{METADATA_BODY}\n"

    policies = {role: f"{role}-{run}" for role in ("default", "open", "ingress")}
    cluster.apply_policy(
        policies["default"],
        {
            "namespaceSelector": {"matchLabels": {"dp": f"default-{run}"}},
            "exemptNamespaces": [namespaces["exempt"]],
            "networkPolicy": {},
        },
    )
    cluster.apply_policy(
        policies["open"],
        {
            "namespaceSelector": {"matchLabels": {"dp": f"open-{run}"}},
            "networkPolicy": {
                "allowSameNamespace": False,
                "allowedEgressCIDRs": ["169.254.169.0/24"],
                "allowedEgressNamespaces": [{"matchLabels": {"dp-role": f"egress-target-{run}"}}],
                "allowedIngressNamespaces": [{"matchLabels": {"dp-role": f"ingress-source-{run}"}}],
            },
        },
    )
    cluster.apply_policy(
        policies["ingress"],
        {
            "namespaceSelector": {"matchLabels": {"dp": f"ingress-{run}"}},
            "networkPolicy": {"defaultDeny": ["Ingress"]},
        },
    )
    for role, policy in (
        ("default-a", "default"),
        ("default-b", "default"),
        ("open", "open"),
        ("ingress", "ingress"),
    ):
        wait_for(
            functools.partial(managed, cluster, namespaces[role], policies[policy]),
            timeout=30,
            message=f"the managed NetworkPolicy in {namespaces[role]}",
        )
    # One sentinel per policy: blocked once the engine has the policy in force.
    for source, address, port in (
        ("f1", pods["a1"].ip, 8080),
        ("f1", pods["c1"].ip, 8080),
        ("f1", pods["d1"].ip, 8080),
        ("c1", METADATA_IP, METADATA_PORT),
        ("d1", METADATA_IP, METADATA_PORT),
    ):
        wait_for(
            functools.partial(blocked, datapath, pods[source], address, port),
            timeout=ENFORCED_TIMEOUT,
            interval=0.2,
            message=f"{source} -> {address}:{port} blocked",
        )
    return Scene(
        datapath=datapath, kube=cluster, namespaces=namespaces, pods=pods, policies=policies
    )


def blocked(datapath: DatapathCluster, source: Pod, address: str, port: int) -> bool:
    return datapath.fetch(source, address, port) == ""


def managed(cluster: Cluster, namespace: str, policy: str) -> Any:
    """The NetworkPolicy mamori manages in ``namespace`` for ``policy``, or None."""
    try:
        return cluster.net.read_namespaced_network_policy(f"mamori-{policy}", namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


# -- pod to pod -------------------------------------------------------------------------------

POD_TO_POD = [
    # default deny, both ways, paired with what the same source or target still reaches
    pytest.param("a1", "b1", False, id="selected-egress-to-other-namespace-blocked"),
    pytest.param("a1", "a2", True, id="allowSameNamespace-egress-and-ingress-open"),
    pytest.param("a1", "f1", False, id="selected-egress-to-unselected-blocked"),
    pytest.param("f1", "a1", False, id="ingress-from-unselected-blocked"),
    pytest.param("f1", "t1", True, id="unselected-to-unselected-open"),
    pytest.param("b1", "a1", False, id="ingress-from-same-policy-other-namespace-blocked"),
    # allowSameNamespace: false
    pytest.param("c1", "c2", False, id="same-namespace-blocked-without-allowSameNamespace"),
    # allowedEgressNamespaces opens exactly the labelled namespace
    pytest.param("c1", "t1", True, id="allowedEgressNamespaces-open"),
    pytest.param("c1", "f1", False, id="allowedEgressNamespaces-others-blocked"),
    pytest.param("c1", "a1", False, id="allowedEgressNamespaces-unlisted-selected-blocked"),
    # allowedIngressNamespaces opens exactly the labelled namespace
    pytest.param("s1", "c1", True, id="allowedIngressNamespaces-open"),
    pytest.param("f1", "c1", False, id="allowedIngressNamespaces-others-blocked"),
    pytest.param("s1", "a1", False, id="allowedIngressNamespaces-only-where-listed"),
    # defaultDeny [Ingress] only: egress stays open
    pytest.param("d1", "f1", True, id="ingress-only-egress-open"),
    pytest.param("f1", "d1", False, id="ingress-only-ingress-blocked"),
    # exempt namespaces keep working both ways
    pytest.param("e1", "f1", True, id="exempt-egress-open"),
    pytest.param("f1", "e1", True, id="exempt-ingress-open"),
]


@pytest.mark.parametrize(("source", "target", "open_"), POD_TO_POD)
def test_pod_to_pod(scene: Scene, source: str, target: str, open_: bool) -> None:
    pods = scene.pods
    body = scene.datapath.fetch(pods[source], pods[target].ip)
    assert body == (f"{target}\n" if open_ else "")


# -- the instance-metadata endpoint and allowed CIDRs -------------------------------------------

TO_ADDRESSES = [
    pytest.param("c1", METADATA_IP, False, id="metadata-blocked-inside-allowed-cidr"),
    pytest.param("c1", METADATA_NEIGHBOUR_IP, True, id="allowedEgressCIDRs-open"),
    pytest.param("c1", TRANSFER_METADATA, False, id="allowedEgressCIDRs-outside-blocked"),
    pytest.param("a1", METADATA_NEIGHBOUR_IP, False, id="no-cidr-allowed-blocked"),
    pytest.param("d1", METADATA_IP, False, id="metadata-blocked-when-egress-open"),
    pytest.param("d1", METADATA_NEIGHBOUR_IP, True, id="egress-open-but-metadata"),
    pytest.param("f1", METADATA_IP, True, id="metadata-reachable-unselected"),
    pytest.param("e1", METADATA_IP, True, id="metadata-reachable-exempt"),
    pytest.param("f1", TRANSFER_METADATA, True, id="outside-cidr-reachable-unselected"),
]


@pytest.mark.parametrize(("source", "address", "open_"), TO_ADDRESSES)
def test_to_addresses(scene: Scene, source: str, address: str, open_: bool) -> None:
    body = scene.datapath.fetch(scene.pods[source], address, METADATA_PORT)
    assert body == (f"{METADATA_BODY}\n" if open_ else "")


# -- DNS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["a1", "c1", "f1"])
def test_dns_through_kube_dns_resolves(scene: Scene, source: str) -> None:
    answer = scene.datapath.resolve(scene.pods[source], KUBE_DNS_NAME)
    assert f"Address: {KUBE_DNS_IP}" in answer, answer


@pytest.mark.parametrize(
    ("source", "open_"),
    [
        pytest.param("a1", False, id="selected-other-port-of-kube-dns-blocked"),
        pytest.param("c1", False, id="selected-without-same-ns-other-port-blocked"),
        pytest.param("f1", True, id="unselected-other-port-of-kube-dns-open"),
    ],
)
def test_other_egress_to_kube_system(scene: Scene, source: str, open_: bool) -> None:
    kube_dns = scene.datapath.kube_dns_pod
    assert kube_dns is not None
    body = scene.datapath.fetch(
        scene.pods[source], kube_dns.ip, COREDNS_HEALTH_PORT, path="/health"
    )
    assert body == ("OK" if open_ else "")


# -- drift and newly selected namespaces ------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """What one disturbance cost, in seconds from it: when the object was (back) in place, and
    when the last probe of traffic that the policy forbids got through (0: none did)."""

    in_place_after: float
    open_seconds: float
    probes: int
    settled_after: float


def watch_gap(
    scene: Scene, *, source: Pod, target: Pod, namespace: str, policy: str, started: float
) -> Gap:
    """Probe ``source`` -> ``target`` (TCP handshakes, at most 50 ms each) until the policy's
    object is in ``namespace`` and traffic has stayed blocked for a second after that."""
    last_open = in_place_at = None
    probes = 0
    deadline = started + ENFORCED_TIMEOUT
    while time.monotonic() < deadline:
        probes += 1
        now = time.monotonic()
        if scene.datapath.connects(source, target.ip, HTTP_PORT, timeout=GAP_PROBE_TIMEOUT):
            last_open = now
        if in_place_at is None and managed(scene.kube, namespace, policy) is not None:
            in_place_at = time.monotonic()
        settled_since = max(last_open or started, in_place_at or now)
        if in_place_at is not None and time.monotonic() - settled_since > 1.0:
            break
    else:
        raise AssertionError(
            f"not settled after {ENFORCED_TIMEOUT:g}s: in place {in_place_at}, "
            f"last open {last_open}"
        )
    assert in_place_at is not None
    return Gap(
        in_place_after=in_place_at - started,
        open_seconds=(last_open - started) if last_open is not None else 0.0,
        probes=probes,
        settled_after=time.monotonic() - started,
    )


DRIFT_ROUNDS = 5


def test_deleted_network_policy_restored_and_traffic_closed_again(
    scene: Scene, record_property: Any
) -> None:
    """Delete the managed NetworkPolicy, several times: it is back, and traffic closed again."""
    namespace, policy = scene.namespaces["default-b"], scene.policies["default"]
    source, target = scene.pods["f1"], scene.pods["b1"]
    gaps = []
    for _ in range(DRIFT_ROUNDS):
        assert scene.datapath.fetch(source, target.ip) == ""
        assert scene.datapath.fetch(source, scene.pods["t1"].ip) == "t1\n"  # the prober works
        started = time.monotonic()
        scene.kube.net.delete_namespaced_network_policy(f"mamori-{policy}", namespace)
        gaps.append(
            watch_gap(
                scene,
                source=source,
                target=target,
                namespace=namespace,
                policy=policy,
                started=started,
            )
        )
    for gap in gaps:
        print(f"drift: {gap}")
    record_property("drift_restored_seconds_max", round(max(g.in_place_after for g in gaps), 3))
    record_property("drift_open_seconds_max", round(max(g.open_seconds for g in gaps), 3))
    assert scene.datapath.fetch(source, target.ip) == ""
    assert max(gap.in_place_after for gap in gaps) < 10.0


def test_newly_selected_namespace_closed(scene: Scene, record_property: Any) -> None:
    """A namespace whose pods run before it is selected: how long they stay open after."""
    name = f"late-{scene.namespaces['free']}"
    scene.kube.create_namespace(name, {})
    late = scene.datapath.run_server(name, "g1", {"app": "g1"})
    source = scene.pods["f1"]
    assert scene.datapath.fetch(source, late.ip) == "g1\n"
    started = time.monotonic()
    selected_by = scene.kube.core.read_namespace(scene.namespaces["default-a"]).metadata.labels
    scene.kube.label_namespace(name, {"dp": selected_by["dp"]})
    gap = watch_gap(
        scene,
        source=source,
        target=late,
        namespace=name,
        policy=scene.policies["default"],
        started=started,
    )
    record_property("new_namespace_in_place_seconds", round(gap.in_place_after, 3))
    record_property("new_namespace_open_seconds", round(gap.open_seconds, 3))
    print(f"newly selected: {gap}")
    assert scene.datapath.fetch(source, late.ip) == ""
    assert scene.datapath.fetch(source, scene.pods["t1"].ip) == "t1\n"
