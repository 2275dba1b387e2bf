"""The chart installed as users install it, on a real node, from our image built from our
Dockerfile: pods become Ready, the API server calls the webhook through its Service, the kubelet
applies what the policy requires, admissions never fail while webhook pods come and go, the
standby operator takes over, and ``helm uninstall`` leaves a cluster that still admits pods.

The tests run in file order on one cluster and one release (each checks what it relies on).
"""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.chart.helm import CHART, Helm
from tests.helpers import wait_for
from tests.integration.cluster import (
    OPERATOR_SELECTOR,
    WEBHOOK_SELECTOR,
    LocalCluster,
    install_mamori,
    ready_pods,
)
from tests.integration.node_images import BUSYBOX_IMAGE, renamed_archive
from tests.integration.node_support import (
    assert_runs_restricted,
    container_pid,
    restricted_pod_spec,
)

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]
IMAGE_ARCHIVE = REPOSITORY / ".cache" / "image" / "mamori.oci.tar"
IMAGE = "localhost/mamori:dev"
RELEASE = "mamori"
NAMESPACE = "mamori-system"
APPS = "apps"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=mamori"
CREATES_PER_SECOND = 20
LOAD_SECONDS = 60


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    if not IMAGE_ARCHIVE.is_file():
        pytest.fail(f"{IMAGE_ARCHIVE} is missing: run `make image`", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="mamori-image-") as scratch:
        archive = renamed_archive(IMAGE_ARCHIVE, name=IMAGE, destination=Path(scratch) / "i.tar")
        with LocalCluster(images=[archive]) as running:
            try:
                yield running
            except BaseException:
                print(running.log_tails())
                raise


@pytest.fixture(scope="module")
def helm(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm-home"), kubeconfig=cluster.kubeconfig)


@pytest.fixture(scope="module")
def installed(cluster: LocalCluster, helm: Helm) -> float:
    """``helm install`` with the defaults except the image; seconds until every pod was Ready."""
    seconds = install_mamori(cluster, helm, image=IMAGE, release=RELEASE, namespace=NAMESPACE)
    cluster.kubectl("create", "namespace", APPS)
    return seconds


def test_every_pod_ready_and_the_ca_bundle_injected(
    cluster: LocalCluster, installed: float, record_property: Any
) -> None:
    record_property("seconds_from_helm_install_to_ready", round(installed, 1))
    configuration = cluster.get_json("validatingwebhookconfiguration", RELEASE)
    bundles = {w["name"]: w["clientConfig"].get("caBundle", "") for w in configuration["webhooks"]}
    assert bundles and all(bundles.values()), bundles
    for webhook in configuration["webhooks"]:
        service = webhook["clientConfig"]["service"]
        assert (service["namespace"], service["name"]) == (NAMESPACE, f"{RELEASE}-webhook")
    pem = base64.b64decode(next(iter(bundles.values()))).decode()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    # Every pod runs our image, as the numeric non-root user, with no restart: the operator
    # once crashed here on a node (no passwd entry for its uid; a lower-case bearer token).
    for pod in cluster.get_json("pods", "-n", NAMESPACE)["items"]:
        (status,) = pod["status"]["containerStatuses"]
        assert status["image"].endswith(IMAGE), status["image"]
        assert status["restartCount"] == 0, (pod["metadata"]["name"], status.get("lastState"))


@pytest.mark.parametrize(
    ("component", "verb", "resource", "allowed"),
    [
        ("kubelet", "list", "secrets", "no"),  # only its pods' secrets, one by one
        ("kubelet", "delete", "nodes", "no"),
        ("kube-proxy", "list", "endpointslices.discovery.k8s.io", "yes"),
        ("kube-proxy", "list", "pods", "no"),
        ("kube-scheduler", "create", "bindings", "yes"),
        ("kube-scheduler", "list", "secrets", "no"),
    ],
)
def test_node_components_run_with_their_own_identity(
    cluster: LocalCluster, component: str, verb: str, resource: str, allowed: str
) -> None:
    """Like a real cluster, none of them holds admin credentials (so our pods' behaviour on it
    does not lean on anyone's excess rights)."""
    answer = cluster.kubectl(
        f"--kubeconfig={cluster.component_kubeconfig(component)}",
        "auth", "can-i", verb, resource, "--all-namespaces", check=False,
    )  # fmt: skip
    # "no" may carry the authorizer's reason ("no - can only read namespaced object ...").
    assert answer.stdout.strip().split(" ")[0] == allowed, (component, verb, answer.stdout)


def test_a_root_pod_is_refused_through_the_service(cluster: LocalCluster, installed: float) -> None:
    refused = cluster.kubectl(
        "run", "as-root", f"--namespace={APPS}", f"--image={BUSYBOX_IMAGE}",
        "--image-pull-policy=Never", check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert 'admission webhook "validate.mamori.io" denied the request' in refused.stderr
    assert "[run-as-non-root]" in refused.stderr
    assert "runAsNonRoot: true" in refused.stderr  # says how to fix it
    assert cluster.kubectl("get", "pods", "-n", APPS, "-o", "name").stdout == ""


def test_a_compliant_deployment_runs_as_the_policy_requires(
    cluster: LocalCluster, installed: float
) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(_compliant_deployment("app", 2)))
    pods = wait_for(
        lambda: (
            (running := [p for p in _pods(cluster, APPS, "app=app") if _running(p)])
            and len(running) == 2
            and running
        ),
        timeout=120,
        interval=0.5,
        message="2 pods of the Deployment Running",
    )
    for pod in pods:
        assert_runs_restricted(container_pid(cluster.node, pod))


def test_helm_test_passes(cluster: LocalCluster, helm: Helm, installed: float) -> None:
    """The chart's test pod calls the webhook by its Service name (cluster DNS on the node)."""
    result = helm("test", RELEASE, f"--namespace={NAMESPACE}", "--timeout=120s")
    assert "Phase:          Succeeded" in result.stdout, result.stdout


def test_helm_upgrade_changes_a_value_and_the_operator_acts_on_it(
    cluster: LocalCluster, helm: Helm, installed: float
) -> None:
    helm(
        "upgrade", RELEASE, str(CHART), f"--namespace={NAMESPACE}", "--reuse-values",
        "--set=policy.networkPolicy.enabled=true", "--set=webhook.timeoutSeconds=5",
    )  # fmt: skip
    configuration = cluster.get_json("validatingwebhookconfiguration", RELEASE)
    assert {w["timeoutSeconds"] for w in configuration["webhooks"]} == {5}
    wait_for(
        lambda: _managed_network_policies(cluster, APPS),
        timeout=60,
        interval=0.5,
        message=f"managed NetworkPolicies in {APPS}",
    )


def test_the_standby_operator_takes_over(
    cluster: LocalCluster, installed: float, record_property: Any
) -> None:
    leader = _lease_holder(cluster)
    assert leader in {p["metadata"]["name"] for p in _pods(cluster, NAMESPACE, OPERATOR_SELECTOR)}
    managed = _managed_network_policies(cluster, APPS)
    assert managed, "the upgrade test enables NetworkPolicies"
    started = time.monotonic()
    cluster.kubectl("delete", "pod", leader, f"--namespace={NAMESPACE}", "--wait=false")
    cluster.kubectl("delete", "networkpolicy", managed[0], f"--namespace={APPS}")
    wait_for(
        lambda: managed[0] in _managed_network_policies(cluster, APPS),
        timeout=120,
        interval=0.25,
        message=f"NetworkPolicy {managed[0]} restored by the new leader",
    )
    restored = time.monotonic() - started
    record_property("seconds_until_networkpolicy_restored_after_leader_deleted", round(restored, 1))
    assert _lease_holder(cluster) != leader


def test_no_admission_fails_while_webhook_pods_go_and_roll(
    cluster: LocalCluster, installed: float, record_property: Any
) -> None:
    with _SteadyCreates(cluster, per_second=CREATES_PER_SECOND) as load:
        wait_for(lambda: load.sent >= CREATES_PER_SECOND * 3, timeout=30, message="load running")
        victim = _pods(cluster, NAMESPACE, WEBHOOK_SELECTOR)[0]["metadata"]["name"]
        cluster.kubectl("delete", "pod", victim, f"--namespace={NAMESPACE}", "--wait=true")
        _wait_webhook_ready(cluster)
        cluster.kubectl("rollout", "restart", f"deployment/{RELEASE}-webhook", "-n", NAMESPACE)
        cluster.kubectl(
            "rollout", "status", f"deployment/{RELEASE}-webhook", "-n", NAMESPACE,
            "--timeout=180s", timeout=200,
        )  # fmt: skip
        _wait_webhook_ready(cluster)
        # At least LOAD_SECONDS in all, and a few seconds on the rolled pods.
        until = max(load.sent + CREATES_PER_SECOND * 5, CREATES_PER_SECOND * LOAD_SECONDS)
        wait_for(lambda: load.sent >= until, timeout=LOAD_SECONDS + 30, message="load to end")
    record_property("admissions", dict(load.outcomes))
    assert load.failures == [], load.failures[:5]
    assert load.outcomes["allowed"] > 0 and load.outcomes["denied"] > 0, load.outcomes
    assert load.outcomes["allowed"] + load.outcomes["denied"] == load.sent


def test_helm_uninstall_leaves_nothing_and_pods_can_be_created(
    cluster: LocalCluster, helm: Helm, installed: float
) -> None:
    helm("uninstall", RELEASE, f"--namespace={NAMESPACE}", "--wait", "--timeout=120s")
    wait_for(
        lambda: not _pods(cluster, NAMESPACE, "app.kubernetes.io/name=mamori"),
        timeout=120,
        interval=0.5,
        message="the release's pods gone",
    )
    instance = f"app.kubernetes.io/instance={RELEASE}"
    kinds = (
        "deployments,services,serviceaccounts,roles,rolebindings,configmaps,secrets,"
        "poddisruptionbudgets,leases"
    )
    assert cluster.kubectl("get", kinds, "-A", "-l", instance, "-o", "name").stdout == ""
    cluster_kinds = "validatingwebhookconfigurations,clusterroles,clusterrolebindings"
    assert cluster.kubectl("get", cluster_kinds, "-l", instance, "-o", "name").stdout == ""
    assert cluster.kubectl("get", "clustersecuritypolicies", "-o", "name").stdout == ""
    # No webhook configuration is left to lock the cluster: a pod is created and runs.
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(_compliant_deployment("after", 1)))
    wait_for(
        lambda: any(_running(p) for p in _pods(cluster, APPS, "app=after")),
        timeout=120,
        interval=0.5,
        message="a pod created after the uninstall Running",
    )


# -- helpers --------------------------------------------------------------------------------------


class _SteadyCreates:
    """Dry-run pod creates at a steady rate through the API server (so through the webhook),
    alternately compliant and as root; counts allowed, denied and anything else (a failure)."""

    def __init__(self, cluster: LocalCluster, *, per_second: int) -> None:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(client)
        self.per_second = per_second
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> _SteadyCreates:
        self._threads = [
            threading.Thread(target=self._pace, name="steady-creates", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        self.core.api_client.close()

    def _pace(self) -> None:
        interval = 1.0 / self.per_second
        workers: list[threading.Thread] = []
        next_at = time.monotonic()
        number = 0
        while not self._stop.is_set():
            number += 1
            worker = threading.Thread(target=self._create, args=(number,), daemon=True)
            worker.start()
            workers.append(worker)
            with self._lock:
                self.sent += 1
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        for worker in workers:
            worker.join(30)

    def _create(self, number: int) -> None:
        compliant = number % 2 == 0
        body = _pod_body(f"load-{number}", compliant=compliant)
        try:
            self.core.create_namespaced_pod(APPS, body, dry_run="All", _request_timeout=15)
            outcome = "allowed" if compliant else "wrongly allowed"
        except kubernetes.client.ApiException as error:
            mamori_denial = error.status == 403 and "denied the request: mamori denied" in str(
                error.body
            )
            outcome = "denied" if mamori_denial and not compliant else f"HTTP {error.status}"
            if outcome != "denied":
                outcome = f"{outcome}: {str(error.body)[:300]}"
        except Exception as error:  # a reset or a timeout is a failed admission too
            outcome = f"{type(error).__name__}: {error}"
        with self._lock:
            if outcome in ("allowed", "denied"):
                self.outcomes[outcome] += 1
            else:
                self.failures.append(outcome)


def _pod_body(name: str, *, compliant: bool) -> dict[str, Any]:
    spec = _compliant_pod_spec()
    if not compliant:
        spec["securityContext"] = {"runAsUser": 0}
        spec["containers"][0].pop("securityContext")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _compliant_pod_spec() -> dict[str, Any]:
    return restricted_pod_spec(["/bin/sleep", "3600"])


def _compliant_deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": APPS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": _compliant_pod_spec()},
        },
    }


def _pods(cluster: LocalCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _running(pod: dict[str, Any]) -> bool:
    statuses = pod["status"].get("containerStatuses") or []
    return bool(statuses) and all("running" in s["state"] for s in statuses)


def _wait_webhook_ready(cluster: LocalCluster) -> None:
    wait_for(
        lambda: ready_pods(cluster, NAMESPACE, WEBHOOK_SELECTOR) == 3,
        timeout=120,
        interval=0.5,
        message="3 webhook pods Ready",
    )


def _lease_holder(cluster: LocalCluster) -> str:
    lease = cluster.get_json("lease", f"{RELEASE}-operator", "-n", NAMESPACE)
    return str(lease["spec"].get("holderIdentity", ""))


def _managed_network_policies(cluster: LocalCluster, namespace: str) -> list[str]:
    found = cluster.get_json("networkpolicies", "-n", namespace, "-l", MANAGED_SELECTOR)
    return sorted(item["metadata"]["name"] for item in found["items"])
