"""Kubernetes Events on the real API server, read back with the real kubectl.

The webhook runs as its own process (``mamori webhook --policy FILE --kubeconfig …``), one
worker, so that one process counts every repeat: each gunicorn worker aggregates on its own
(docs/troubleshooting.md). The operator runs in-process (tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mamori_operator.services import Services
from tests.chart.helm import Helm
from tests.cluster_fixtures import Kubectl, NamespaceFactory
from tests.helpers import wait_for
from tests.integration.operator_support import Cluster, fake_digest, unique, wait_until
from tests.integration.test_admission import (
    DENIED,
    SELECTOR,
    apply,
    deployment,
    pod_spec,
    policy,
    privileged_spec,
    registered,
    wait_until_judged,
    webhook_configuration,
)
from tests.integration.test_chart import service_account_kubeconfig
from tests.webhook.served import Pki, Served, metric, start_webhook, write_policy

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
MANAGED = "app.kubernetes.io/managed-by=mamori"


@contextmanager
def webhook_with_events(
    kubectl: Kubectl, kubeconfig: Path, directory: Path, enforcement: str, *, tag: str = ""
) -> Iterator[tuple[str, Served]]:
    """One webhook process posting Events; yields the namespace label value that opts in."""
    kind = enforcement.lower() + (f"-{tag}" if tag else "")
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    pki.write_initial()
    webhook = start_webhook(
        pki=pki,
        log_file=directory / "webhook.log",
        policy_file=write_policy(
            directory / "policy.yaml",
            policy(f"events-{enforcement.lower()}", enforcement=enforcement),
        ),
        extra=["--kubeconfig", str(kubeconfig), "--workers", "1"],
    )
    try:
        value = f"{RUN}-events-{kind}"
        config = webhook_configuration(
            name=f"mamori-events-{kind}-{RUN}", webhook=webhook, selector_value=value
        )
        with registered(kubectl, config):
            yield value, webhook
        assert webhook.process.poll() is None, webhook.log()
    finally:
        webhook.stop()


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("events")


@pytest.fixture(scope="module")
def enforcing(kubectl: Kubectl, kubeconfig: Path, directory: Path) -> Iterator[tuple[str, Served]]:
    with webhook_with_events(kubectl, kubeconfig, directory / "enforce", "Enforce") as found:
        yield found


@pytest.fixture(scope="module")
def warning(kubectl: Kubectl, kubeconfig: Path, directory: Path) -> Iterator[tuple[str, Served]]:
    with webhook_with_events(kubectl, kubeconfig, directory / "warn", "Warn") as found:
        yield found


def events(kubectl: Kubectl, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    """What ``kubectl get events --field-selector`` lists for one object and reason."""
    selector = f"involvedObject.name={name},reason={reason}"
    result = kubectl("get", "events", "-n", namespace, "--field-selector", selector, "-o", "json")
    return json.loads(result.stdout)["items"]  # type: ignore[no-any-return]


def kubectl_message(stderr: str) -> str:
    """mamori's message as kubectl printed it (after the API server's prefix), on one line."""
    head, *items = stderr[stderr.index("mamori denied") :].rstrip("\n").split("\n")
    return head + " " + "; ".join(item.removeprefix("- ") for item in items)


def scraped(webhook: Served, outcome: str) -> float:
    text = webhook.session().get(f"{webhook.url}/metrics", timeout=5).text
    return metric(text, "mamori_webhook_event_posts_total", outcome=outcome)


# -- the webhook -------------------------------------------------------------------------------


def test_a_denied_deployment_gets_an_event_within_seconds(
    kubectl: Kubectl, enforcing: tuple[str, Served], make_namespace: NamespaceFactory
) -> None:
    label, _ = enforcing
    namespace = make_namespace(labels={SELECTOR: label})
    wait_until_judged(kubectl, namespace, expect=DENIED)
    result = apply(kubectl, namespace, deployment("privileged", privileged_spec()))
    assert result.returncode == 1 and DENIED in result.stderr
    refused = time.monotonic()

    [event] = wait_for(
        lambda: events(kubectl, namespace, "privileged", "AdmissionDenied"),
        timeout=10,
        message="an AdmissionDenied Event on deployment/privileged",
    )
    seconds = time.monotonic() - refused
    assert seconds < 5, f"the Event took {seconds:.1f}s"
    assert event["type"] == "Warning"
    assert event["involvedObject"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "privileged",
        "namespace": namespace,
    }
    assert event["source"]["component"] == event["reportingComponent"] == "mamori-webhook"
    assert event["message"] == kubectl_message(result.stderr)
    assert "[privileged]" in event["message"]
    listed = kubectl("get", "events", "-n", namespace).stdout
    assert "AdmissionDenied" in listed and "deployment/privileged" in listed


def test_thirty_denials_of_one_object_are_one_event_counted_thirty_times(
    kubectl: Kubectl, enforcing: tuple[str, Served], make_namespace: NamespaceFactory
) -> None:
    label, webhook = enforcing
    namespace = make_namespace(labels={SELECTOR: label})
    wait_until_judged(kubectl, namespace, expect=DENIED)
    before = scraped(webhook, "aggregated")
    manifest = deployment("again", privileged_spec())
    for _ in range(30):
        assert apply(kubectl, namespace, manifest).returncode == 1

    def counted() -> list[dict[str, Any]]:
        found = events(kubectl, namespace, "again", "AdmissionDenied")
        return found if sum(e.get("count", 1) for e in found) == 30 else []

    found = wait_for(counted, timeout=15, message="30 denials counted")
    assert len(found) == 1, found
    assert found[0]["count"] == 30
    assert found[0]["firstTimestamp"] <= found[0]["lastTimestamp"]
    assert scraped(webhook, "aggregated") - before == 29


def test_a_warn_admission_posts_a_warning_event_that_describe_shows(
    kubectl: Kubectl, warning: tuple[str, Served], make_namespace: NamespaceFactory
) -> None:
    label, _ = warning
    namespace = make_namespace(labels={SELECTOR: label})
    wait_until_judged(kubectl, namespace, expect="Warning:")
    spec = pod_spec()
    del spec["securityContext"]["seccompProfile"]
    result = apply(kubectl, namespace, deployment("warned", spec))
    assert result.returncode == 0, result.stderr
    assert "[seccomp-profile]" in result.stderr

    [event] = wait_for(
        lambda: events(kubectl, namespace, "warned", "AdmissionWarning"),
        timeout=10,
        message="an AdmissionWarning Event on deployment/warned",
    )
    assert event["type"] == "Warning"
    uid = kubectl("get", "deployment", "warned", "-n", namespace, "-o", "jsonpath={.metadata.uid}")
    assert event["involvedObject"]["uid"] == uid.stdout
    assert event["message"].startswith(
        'mamori warned about Deployment "warned": 1 violation of policy "events-warn":'
    )
    described = kubectl("describe", "deployment", "warned", "-n", namespace).stdout
    assert "AdmissionWarning" in described and "mamori-webhook" in described


@pytest.fixture
def webhook_account(
    kubectl: Kubectl, kubeconfig: Path, make_namespace: NamespaceFactory, tmp_path: Path
) -> Iterator[Path]:
    """A kubeconfig for the chart's webhook ServiceAccount, with the chart's ClusterRole bound."""
    release = f"events-{RUN}"
    system = make_namespace()
    templates = ("clusterrole", "clusterrolebinding", "serviceaccount")
    rendered = Helm.find(tmp_path / "helm").template(
        release=release,
        namespace=system,
        extra=[f"--show-only=templates/webhook-{name}.yaml" for name in templates],
    )
    kubectl("apply", "-f", "-", input=rendered.stdout)
    try:
        yield service_account_kubeconfig(
            kubectl,
            admin=kubeconfig,
            namespace=system,
            account=f"{release}-mamori-webhook",
            destination=tmp_path / "webhook.kubeconfig",
        )
    finally:
        kubectl("delete", "-f", "-", "--ignore-not-found", input=rendered.stdout, check=False)


def test_the_charts_rbac_lets_the_webhook_post_and_count_events(
    kubectl: Kubectl,
    webhook_account: Path,
    make_namespace: NamespaceFactory,
    tmp_path: Path,
) -> None:
    with webhook_with_events(kubectl, webhook_account, tmp_path, "Enforce", tag="rbac") as found:
        label, webhook = found
        namespace = make_namespace(labels={SELECTOR: label})
        wait_until_judged(kubectl, namespace, expect=DENIED)
        manifest = deployment("rbac", privileged_spec())
        for _ in range(2):  # a create, then a patch
            assert apply(kubectl, namespace, manifest).returncode == 1

        def counted() -> list[dict[str, Any]]:
            found = events(kubectl, namespace, "rbac", "AdmissionDenied")
            return found if found and found[0].get("count") == 2 else []

        wait_for(counted, timeout=10, message="2 denials counted with the chart's RBAC")
        assert "could not post" not in webhook.log()


# -- the operator ------------------------------------------------------------------------------


def selected_namespace(cluster: Cluster, made: dict[str, list[str]], spec: dict[str, Any]) -> str:
    namespace, policy_name = unique("ev"), unique("ev")
    cluster.create_namespace(namespace, {"mamori-test": namespace})
    made["namespaces"].append(namespace)
    cluster.apply_policy(
        policy_name, {"namespaceSelector": {"matchLabels": {"mamori-test": namespace}}, **spec}
    )
    made["policies"].append(policy_name)
    return namespace


def test_a_repaired_network_policy_gets_events_on_itself_counted(
    cluster: Cluster, operator: Services, kubectl: Kubectl, made: dict[str, list[str]]
) -> None:
    namespace = selected_namespace(cluster, made, {"networkPolicy": {}})

    def managed() -> Any:
        items = cluster.net.list_namespaced_network_policy(namespace, label_selector=MANAGED).items
        return items[0] if items else None

    netpol = wait_until(managed, message="the managed NetworkPolicy")
    name, uid = netpol.metadata.name, netpol.metadata.uid
    for round_number in (1, 2):
        cluster.net.patch_namespaced_network_policy(
            name, namespace, {"spec": {"ingress": [{"from": [{"namespaceSelector": {}}]}]}}
        )

        def repaired(expected: int = round_number) -> list[dict[str, Any]]:
            found = events(kubectl, namespace, name, "NetworkPolicyRepaired")
            return found if found and found[0].get("count") == expected else []

        [event] = wait_until(repaired, message=f"repair {round_number} counted")
    assert event["type"] == "Normal"
    assert event["involvedObject"]["uid"] == uid
    assert event["involvedObject"]["kind"] == "NetworkPolicy"
    assert event["source"]["component"] == "mamori-operator"
    assert operator.metrics.event_posts.labels(outcome="aggregated")._value.get() >= 2
    listed = kubectl("events", "-n", namespace, "--for", f"networkpolicy/{name}").stdout
    assert "NetworkPolicyRepaired" in listed  # (describe shows no events for NetworkPolicies)

    cluster.net.delete_namespaced_network_policy(name, namespace)
    [restored] = wait_until(lambda: events(kubectl, namespace, name, "NetworkPolicyRestored"))
    new_uid = cluster.net.read_namespaced_network_policy(name, namespace).metadata.uid
    assert restored["involvedObject"]["uid"] == new_uid != uid


def test_a_pod_found_vulnerable_gets_a_warning_event(
    cluster: Cluster, operator: Services, kubectl: Kubectl, made: dict[str, list[str]]
) -> None:
    namespace = selected_namespace(
        cluster, made, {"imageScan": {"providers": ["imagescan"], "severityThreshold": "HIGH"}}
    )
    digest = fake_digest(namespace)
    image = f"registry.example/api@{digest}"
    pod = unique("api")
    created = cluster.create_pod(namespace, pod, {"api": image})
    cluster.kubelet_reports(namespace, pod, {"api": image})
    cluster.wait_for_scan_status(namespace, pod, "unscanned")
    cluster.write_image_scan(
        digest,
        {
            "repository": "registry.example/api",
            "scanner": "grype-0.80",
            "scannedAt": "2026-02-02T02:02:02Z",
            "summary": {"critical": 1, "high": 2},
            "findings": [{"id": "GHSA-xxxx", "severity": "CRITICAL", "package": "openssl"}],
        },
    )
    cluster.wait_for_scan_status(namespace, pod, "vulnerable")
    [event] = wait_until(lambda: events(kubectl, namespace, pod, "VulnerableImage"))
    assert event["type"] == "Warning"
    assert event["involvedObject"]["uid"] == created["metadata"]["uid"]
    assert event["message"].startswith(
        f"image registry.example/api@{digest} has 1 CRITICAL, 2 HIGH"
    )
    assert "VulnerableImage" in kubectl("describe", "pod", pod, "-n", namespace).stdout
