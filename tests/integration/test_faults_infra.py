"""The fault-injection pieces themselves (faults.py, LocalControlPlane's fault methods) do what the
fault tests rely on: a restarted API server keeps its port and data, compaction expires old
watches, the proxy really cuts and restores, and the admission refusal starts and ends."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mamori_dev.controlplane import LocalControlPlane
from tests.cluster_fixtures import ClusterUnderTest, Kubectl, NamespaceFactory
from tests.integration import faults

pytestmark = pytest.mark.integration
NO_WATCH_CACHE = ("--watch-cache=false",)
VERSION = "jsonpath={.metadata.resourceVersion}"


def configmap(name: str, value: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"value": value},
        }
    )


def network_policy(name: str, namespace: str) -> str:
    return json.dumps(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
    )


def watch_events(kubectl: Kubectl, path: str, *, since: str) -> list[dict[str, object]]:
    """Events of a short watch from resourceVersion ``since`` (the server ends it after 1s)."""
    raw = kubectl("get", "--raw", f"{path}?watch=1&resourceVersion={since}&timeoutSeconds=1")
    return [json.loads(line) for line in raw.stdout.splitlines() if line.strip()]


def admin_context(plane: LocalControlPlane) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(plane.ca_certificate))
    context.load_cert_chain(plane.work_dir / "admin.crt", plane.work_dir / "admin.key")
    return context


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the API server: stop, kill, restart --------------------------------------------------------


def test_a_killed_api_server_comes_back_on_its_port_with_its_data(
    private_control_plane: LocalControlPlane, private_kubectl: Kubectl
) -> None:
    plane = private_control_plane
    server, first_pid = plane.server, plane.apiserver_pid
    private_kubectl("create", "-f", "-", input=configmap("kept", "before"))

    plane.stop_apiserver(kill=True)
    assert not plane.apiserver_running and plane.apiserver_pid is None
    assert first_pid is not None and not process_alive(first_pid)
    refused = private_kubectl("get", "configmap", "kept", "--request-timeout=5s", check=False)
    assert refused.returncode != 0 and "refused" in refused.stderr
    plane.check_running()  # a stop on purpose is not a crash

    plane.start_apiserver()
    assert plane.server == server and plane.apiserver_pid not in (None, first_pid)
    kept = json.loads(private_kubectl("get", "configmap", "kept", "-o", "json").stdout)
    assert kept["data"] == {"value": "before"}
    assert (plane.work_dir / "kube-apiserver.log").stat().st_size > 0  # the first run's log
    assert (plane.work_dir / "kube-apiserver-2.log").is_file()


def test_restart_apiserver_stays_down_for_the_time_asked(
    private_control_plane: LocalControlPlane, private_kubectl: Kubectl
) -> None:
    plane = private_control_plane
    before = plane.apiserver_pid
    started = time.monotonic()
    plane.restart_apiserver(down_for=1.5)
    assert time.monotonic() - started >= 1.5
    assert plane.apiserver_pid not in (None, before) and plane.running
    private_kubectl("create", "-f", "-", input=configmap("after-restart", "x"))


def test_the_private_control_plane_stops_when_the_test_body_fails() -> None:
    failing = pytest.raises(RuntimeError, match="the test failed")
    with failing, faults.private_control_plane() as plane:
        pids, work_dir = plane.pids, plane.work_dir
        raise RuntimeError("the test failed")
    assert not any(process_alive(pid) for pid in pids)
    assert not work_dir.exists()


# -- etcd compaction ----------------------------------------------------------------------------


@pytest.mark.parametrize("private_apiserver_args", [NO_WATCH_CACHE])
def test_compaction_expires_watches_from_older_versions(
    private_control_plane: LocalControlPlane, private_kubectl: Kubectl
) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    created = private_kubectl("create", "-f", "-", "-o", VERSION, input=configmap("c", "1")).stdout
    patched = private_kubectl(
        "patch", "configmap", "c", "-p", '{"data":{"value":"2"}}', "-o", VERSION
    ).stdout

    before = watch_events(private_kubectl, path, since=created)
    assert [event["type"] for event in before] == ["MODIFIED"]

    revision = private_control_plane.compact_etcd()
    assert revision > int(patched) > int(created)
    for since in (created, patched):  # the newest version a client saw is gone too
        after = watch_events(private_kubectl, path, since=since)
        assert [(e["type"], e["object"]["code"]) for e in after] == [("ERROR", 410)]  # type: ignore[index]
    # Listing still works, and a watch from the new list's version is fine.
    listed = json.loads(private_kubectl("get", "--raw", path).stdout)
    assert watch_events(private_kubectl, path, since=listed["metadata"]["resourceVersion"]) == []


def test_the_watch_cache_hides_compaction_unless_it_is_off(
    private_control_plane: LocalControlPlane, private_kubectl: Kubectl
) -> None:
    """Why fault tests pass --watch-cache=false: by default the cache still serves the version."""
    path = "/api/v1/namespaces/default/configmaps"
    created = private_kubectl("create", "-f", "-", "-o", VERSION, input=configmap("d", "1")).stdout
    private_kubectl("patch", "configmap", "d", "-p", '{"data":{"value":"2"}}')
    private_control_plane.compact_etcd()
    events = watch_events(private_kubectl, path, since=created)
    assert [event["type"] for event in events] == ["MODIFIED"]


# -- the network: a loopback proxy ---------------------------------------------------------------


@pytest.fixture
def proxied_kubectl(
    private_control_plane: LocalControlPlane,
    proxied_kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Kubectl:
    cache = tmp_path_factory.mktemp("proxied-kubectl-cache")
    cluster = ClusterUnderTest(proxied_kubeconfig, private_control_plane.kubectl, cache, None)
    return Kubectl(cluster)


@pytest.fixture
def open_watch(
    private_control_plane: LocalControlPlane, apiserver_proxy: faults.LoopbackProxy
) -> Iterator[http.client.HTTPResponse]:
    """A long watch on namespaces through the proxy, its first event already read."""
    connection = http.client.HTTPSConnection(
        faults.LOOPBACK,
        apiserver_proxy.port,
        context=admin_context(private_control_plane),
        timeout=30,
    )
    connection.request("GET", "/api/v1/namespaces?watch=1&timeoutSeconds=120")
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.readline())["type"] == "ADDED"
    yield response
    connection.close()


def test_the_proxy_forwards_tls_to_the_api_server(
    proxied_kubectl: Kubectl, proxied_kubeconfig: Path, apiserver_proxy: faults.LoopbackProxy
) -> None:
    assert f"server: {apiserver_proxy.url}" in proxied_kubeconfig.read_text()
    assert proxied_kubeconfig.stat().st_mode & 0o777 == 0o600
    listed = proxied_kubectl("get", "namespace", "default", "-o", "name")
    assert listed.stdout.strip() == "namespace/default"


def test_a_cut_drops_open_connections_and_refuses_new_ones_until_restored(
    proxied_kubectl: Kubectl,
    apiserver_proxy: faults.LoopbackProxy,
    open_watch: http.client.HTTPResponse,
) -> None:
    assert apiserver_proxy.open_connections >= 1
    apiserver_proxy.cut()
    assert apiserver_proxy.is_cut and apiserver_proxy.open_connections == 0
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead, ssl.SSLError)):
        open_watch.read()
    failed = proxied_kubectl("get", "namespaces", "--request-timeout=5s", check=False)
    assert failed.returncode != 0
    assert "connection reset" in failed.stderr or "EOF" in failed.stderr, failed.stderr

    apiserver_proxy.restore()
    assert not apiserver_proxy.is_cut
    assert proxied_kubectl("get", "namespace", "default", "-o", "name").stdout.strip()


def test_a_blackhole_cut_answers_nothing_until_restored(
    private_control_plane: LocalControlPlane,
    proxied_kubectl: Kubectl,
    apiserver_proxy: faults.LoopbackProxy,
    open_watch: http.client.HTTPResponse,
) -> None:
    apiserver_proxy.cut(blackhole=True)
    silent = proxied_kubectl("get", "namespaces", "--request-timeout=2s", check=False)
    assert silent.returncode != 0
    assert "timeout" in silent.stderr.lower() or "deadline" in silent.stderr.lower()
    # The open watch is silent too: a change made directly is not passed on.
    direct = Kubectl(
        ClusterUnderTest(
            private_control_plane.kubeconfig,
            private_control_plane.kubectl,
            proxied_kubectl.cluster.kubectl_cache,
            private_control_plane,
        )
    )
    direct("create", "namespace", "made-during-blackhole")
    raw = open_watch.fp.raw._sock  # type: ignore[union-attr]
    readable, _, _ = select.select([raw], [], [], 1.0)  # an event passed on would be here by now
    assert readable == []

    apiserver_proxy.restore()
    names = []
    while "made-during-blackhole" not in names and len(names) < 20:
        names.append(json.loads(open_watch.readline())["object"]["metadata"]["name"])
    assert names[-1] == "made-during-blackhole"
    assert proxied_kubectl("get", "namespace", "default", "-o", "name").stdout.strip()


def test_a_stopped_proxy_refuses_connections() -> None:
    with socket.socket() as upstream:
        upstream.bind((faults.LOOPBACK, 0))
        upstream.listen()
        failing = pytest.raises(RuntimeError)
        with failing, faults.LoopbackProxy(upstream.getsockname()) as proxy:
            port = proxy.port
            socket.create_connection((faults.LOOPBACK, port), timeout=5).close()
            raise RuntimeError("the test failed")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((faults.LOOPBACK, port), timeout=5).close()


# -- admission: a transient refusal of NetworkPolicy writes ----------------------------------------


def test_network_policy_writes_are_refused_until_the_refusal_ends(
    control_plane: ClusterUnderTest, kubectl: Kubectl, make_namespace: NamespaceFactory
) -> None:
    """On the session control plane: scoped to one namespace, it disturbs no other test."""
    refused_ns, other_ns = make_namespace(), make_namespace()
    with faults.NetworkPolicyRefusal(
        kubeconfig=control_plane.kubeconfig,
        kubectl=control_plane.kubectl_binary,
        namespace=refused_ns,
    ) as refusal:
        denied = kubectl("create", "-f", "-", input=network_policy("a", refused_ns), check=False)
        assert denied.returncode != 0 and faults.REFUSAL_MESSAGE in denied.stderr
        kubectl("create", "-f", "-", input=network_policy("a", other_ns))
        listed = kubectl("get", "validatingadmissionpolicies", "-o", "name").stdout
        assert f"validatingadmissionpolicy.admissionregistration.k8s.io/{refusal.name}" in listed
    kubectl("create", "-f", "-", input=network_policy("a", refused_ns))
    kinds = "validatingadmissionpolicies,validatingadmissionpolicybindings"
    assert refusal.name not in kubectl("get", kinds, "-o", "name").stdout
