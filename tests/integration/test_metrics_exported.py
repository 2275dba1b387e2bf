"""The metrics the chart's alerts and dashboard read are the ones the running programs export.

A real ``mamori webhook`` (its own process, over TLS, registered with the real API server) judges
a few requests, and a real ``mamori operator`` (its own process, leading through a Lease, keeping
certificates) reconciles a policy; then both ``/metrics`` endpoints are scraped as Prometheus
would. Every metric named by the rendered PrometheusRule and Grafana dashboard must be among
what they served (or Prometheus's own ``up``), and docs/metrics.md must list exactly what each
served. The rendered ServiceMonitor, PodMonitor, PrometheusRule and dashboard ConfigMap pass
``kubectl apply --dry-run=server`` against test CRDs of the monitoring.coreos.com kinds.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import requests
import yaml
from cryptography import x509
from kubernetes.client.rest import ApiException

from tests.chart.helm import Helm
from tests.chart.monitoring import ALL_ON, monitoring_objects, rendered_queries
from tests.cluster_fixtures import Kubectl, KubectlResult, NamespaceFactory
from tests.helpers import wait_for
from tests.integration.operator_support import (
    Cluster,
    fake_digest,
    free_port,
    webhook_configuration_body,
)
from tests.metric_names import documented, exported, referenced, unknown
from tests.webhook.served import Pki, Served, metric, start_webhook, write_policy

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
SELECTOR = "mamori.io/metrics-test"
OPERATOR_SELECTOR = "mamori.io/metrics-operator-test"
ROOT = Path(__file__).resolve().parents[2]
MONITORING_CRDS = tuple(sorted((ROOT / "tests/fixtures/crds").glob("*.monitoring.coreos.com.yaml")))
RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


# -- the webhook ---------------------------------------------------------------------------------


def pod(name: str, security: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {"name": "app", "image": "registry.example/app:1", "securityContext": security}
            ]
        },
    }


@dataclass
class Scraped:
    """One scrape of each program, taken after they have done some work."""

    webhook: str
    operator: str


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Pki]]:
    directory = tmp_path_factory.mktemp("metrics-webhook")
    pki = Pki(directory)
    pki.write_initial()
    policy = {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": f"metrics-{RUN}"},
        "spec": {"enforcement": "Enforce", "podSecurity": "restricted"},
    }
    served = start_webhook(
        pki=pki,
        log_file=directory / "webhook.log",
        policy_file=write_policy(directory / "policy.yaml", policy),
    )
    try:
        yield served, pki
    finally:
        served.stop()


@pytest.fixture(scope="module")
def admissions(webhook: tuple[Served, Pki], kubectl: Kubectl) -> Iterator[str]:
    """Send the webhook real admissions through the API server: one denied, one allowed."""
    served, _ = webhook
    namespace = f"metrics-{RUN}-admitted"
    configuration: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"mamori-metrics-{RUN}"},
        "webhooks": [
            {
                "name": "validate.mamori.io",
                "clientConfig": {
                    "url": f"{served.url}/validate",
                    "caBundle": base64.b64encode(served.ca_file.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "operations": ["CREATE"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {SELECTOR: RUN}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
        ],
    }
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, f"{SELECTOR}={RUN}")
    kubectl("apply", "-f", "-", input=json.dumps(configuration))
    try:

        def dry_run(manifest: dict[str, Any]) -> KubectlResult:
            return kubectl(
                "apply", "-n", namespace, "--dry-run=server", "-f", "-",
                input=json.dumps(manifest), check=False,
            )  # fmt: skip

        wait_for(
            lambda: "mamori denied" in dry_run(pod("root", {"privileged": True})).stderr,
            timeout=30,
            interval=0.25,
            message="the API server sends pods to the webhook",
        )
        allowed = dry_run(pod("compliant", RESTRICTED))
        assert allowed.returncode == 0, allowed.stderr
        yield namespace
    finally:
        kubectl("delete", "validatingwebhookconfiguration", configuration["metadata"]["name"],
                "--ignore-not-found")  # fmt: skip
        kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")


# -- the operator --------------------------------------------------------------------------------


class OperatorProcess:
    """``mamori operator`` as its own process, leading and keeping certificates."""

    def __init__(self, *, kubeconfig: Path, namespace: str, logs: Path) -> None:
        self.namespace = namespace
        self.metrics_port = free_port()
        self.configuration = f"mamori-metrics-{RUN}-certificates"
        self.secret = f"metrics-{RUN}-tls"
        self.log_path = logs / "operator.log"
        self._log: IO[str] = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "mamori.cli", "operator",
                "--kubeconfig", str(kubeconfig),
                "--namespace", namespace,
                "--identity", f"metrics-{RUN}",
                "--lease-name", f"mamori-metrics-{RUN}",
                "--lease-seconds", "5",
                "--status-interval", "0.5",
                "--workers", "2",
                "--metrics-port", str(self.metrics_port),
                "--health-port", str(free_port()),
                "--log-format", "text",
                "--manage-certificates",
                "--certificate-secret", self.secret,
                "--certificate-ca-secret", f"metrics-{RUN}-ca",
                "--certificate-webhook-configuration", self.configuration,
                "--certificate-service", "mamori-webhook",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
            cwd=ROOT,
        )  # fmt: skip

    def scrape(self) -> str:
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited {self.process.returncode}:\n{self.log()}")
        session = requests.Session()
        session.trust_env = False
        try:
            reply = session.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5)
        except requests.ConnectionError:
            return ""
        return reply.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        finally:
            self._log.close()


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, kubeconfig: Path, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator running, leading, its certificates written, a NetworkPolicy reconciled, one
    it cannot write (a NetworkPolicy of the same name that mamori does not manage is in the
    way), and a pod found vulnerable (by an ImageScan, as a CI pipeline writes it)."""
    namespace, selected = f"metrics-{RUN}-operator", f"metrics-{RUN}-selected"
    squatted = f"metrics-{RUN}-squatted"
    policy, digest = f"metrics-{RUN}", fake_digest(f"metrics-{RUN}")
    cluster.create_namespace(namespace)
    cluster.create_namespace(selected, {OPERATOR_SELECTOR: RUN})
    cluster.create_namespace(squatted, {OPERATOR_SELECTOR: RUN})
    cluster.net.create_namespaced_network_policy(
        squatted,
        {
            "metadata": {"name": f"mamori-{policy}"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Egress"]},
        },
    )
    configuration = webhook_configuration_body(f"mamori-metrics-{RUN}-certificates")
    kubectl("apply", "-f", "-", input=json.dumps(configuration))
    process = OperatorProcess(
        kubeconfig=kubeconfig, namespace=namespace, logs=tmp_path_factory.mktemp("metrics-operator")
    )
    try:
        wait_for(
            lambda: metric(process.scrape(), "mamori_operator_leader") == 1,
            timeout=60,
            message="the operator leads",
        )
        cluster.apply_policy(
            policy,
            {
                "enforcement": "Audit",
                "namespaceSelector": {"matchLabels": {OPERATOR_SELECTOR: RUN}},
                "networkPolicy": {"defaultDeny": ["Ingress"]},
                "imageScan": {"providers": ["imagescan"], "severityThreshold": "HIGH"},
            },
        )
        wait_for(
            lambda: cluster.network_policies(selected).get(f"mamori-{policy}"),
            timeout=60,
            message=f"NetworkPolicy mamori-{policy} in {selected}",
        )
        image = f"registry.example/api@{digest}"
        cluster.create_pod(selected, "api", {"api": image})
        cluster.kubelet_reports(selected, "api", {"api": image})
        cluster.write_image_scan(
            digest,
            {
                "repository": "registry.example/api",
                "scanner": "grype-0.80",
                "scannedAt": "2026-02-02T02:02:02Z",
                "summary": {"high": 2},
                "findings": [{"id": "GHSA-xxxx", "severity": "HIGH", "package": "requests"}],
            },
        )
        cluster.wait_for_scan_status(selected, "api", "vulnerable")
        yield process
    finally:
        process.stop()
        cluster.delete_policy(policy)
        with contextlib.suppress(ApiException):
            cluster.custom.delete_cluster_custom_object(
                "mamori.io", "v1alpha1", "imagescans", digest.replace(":", "-")
            )
        kubectl("delete", "validatingwebhookconfiguration", configuration["metadata"]["name"],
                "--ignore-not-found")  # fmt: skip
        for name in (namespace, selected, squatted):
            cluster.delete_namespace(name)


@pytest.fixture(scope="module")
def scraped(webhook: tuple[Served, Pki], admissions: str, operator: OperatorProcess) -> Scraped:
    served, _ = webhook
    session = served.session()
    # One request without a verdict (reason malformed-review), as a scanner on the network sends.
    assert session.post(f"{served.url}/validate", json={"kind": "nonsense"}).status_code == 400

    def operator_worked() -> str | None:
        text = operator.scrape()
        done = (
            metric(text, "mamori_operator_reconciles_total", kind="network-policies",
                   outcome="success") >= 1
            and metric(text, "mamori_operator_reconciles_total", kind="policy-status",
                       outcome="success") >= 1
            and metric(text, "mamori_operator_certificate_expiry_timestamp_seconds",
                       certificate="serving") > 0
            and metric(text, "mamori_operator_pods_by_scan_status", status="vulnerable") >= 1
            and metric(text, "mamori_operator_reconciles_total", kind="network-policies",
                       outcome="failure") >= 1
        )  # fmt: skip
        return text if done else None

    operator_text = wait_for(operator_worked, timeout=60, message="reconciles on /metrics")
    assert operator_text is not None
    return Scraped(
        webhook=session.get(f"{served.url}/metrics", timeout=10).text, operator=operator_text
    )


@pytest.fixture(scope="module")
def chart_queries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    helm = Helm.find(tmp_path_factory.mktemp("helm-home"))
    queries = rendered_queries(helm.render(settings=ALL_ON))
    assert len(queries) > 10
    return queries


# -- the tests -----------------------------------------------------------------------------------


def test_the_scrapes_show_the_work_that_was_done(
    scraped: Scraped, webhook: tuple[Served, Pki], operator: OperatorProcess, cluster: Cluster
) -> None:
    text = scraped.webhook
    assert metric(text, "mamori_admission_requests_total", decision="denied", kind="Pod") >= 1
    assert metric(text, "mamori_admission_requests_total", decision="allowed", kind="Pod") >= 1
    assert metric(text, "mamori_admission_violations_total", rule="privileged") >= 1
    assert metric(text, "mamori_admission_duration_seconds_count") >= 2
    assert metric(text, "mamori_admission_errors_total", reason="malformed-review") >= 1
    _, pki = webhook
    served = x509.load_pem_x509_certificate(pki.cert_file.read_bytes())
    assert metric(text, "mamori_webhook_certificate_expiry_timestamp_seconds") == (
        served.not_valid_after_utc.timestamp()
    )
    text = scraped.operator
    assert metric(text, "mamori_operator_leader") == 1
    for kind in ("network-policies", "policy-status", "scan-lookup", "pod-scan-status"):
        assert metric(text, "mamori_operator_reconciles_total", kind=kind, outcome="success") >= 1
    assert metric(text, "mamori_operator_pods_by_scan_status", status="vulnerable") >= 1
    # the squatted namespace: what MamoriReconcileFailures counts
    assert metric(text, "mamori_operator_reconciles_total", kind="network-policies",
                  outcome="failure") >= 1  # fmt: skip
    secret = cluster.core.read_namespaced_secret(operator.secret, operator.namespace)
    kept = x509.load_pem_x509_certificate(base64.b64decode(secret.data["tls.crt"]))
    expiry = metric(text, "mamori_operator_certificate_expiry_timestamp_seconds",
                    certificate="serving")  # fmt: skip
    assert expiry == kept.not_valid_after_utc.timestamp()
    assert expiry > datetime.datetime.now(datetime.UTC).timestamp() + 30 * 86400


def test_every_metric_the_alerts_and_dashboard_read_is_exported(
    scraped: Scraped, chart_queries: dict[str, str]
) -> None:
    served = {**exported(scraped.webhook), **exported(scraped.operator)}
    missing = {
        where: sorted(unknown(referenced(query), served))
        for where, query in chart_queries.items()
        if unknown(referenced(query), served)
    }
    assert missing == {}


@pytest.mark.parametrize(("program", "section"), [("webhook", "Webhook metrics"),
                                                  ("operator", "Operator metrics")])  # fmt: skip
def test_docs_list_exactly_what_each_process_serves(
    scraped: Scraped, program: str, section: str
) -> None:
    served = set(exported(getattr(scraped, program)))
    listed = documented(section)
    assert {"missing from docs/metrics.md": served - listed, "not served": listed - served} == {
        "missing from docs/metrics.md": set(),
        "not served": set(),
    }


# -- the objects on the API server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def monitoring_crds(kubectl: Kubectl) -> Iterator[None]:
    """Our test CRDs of the monitoring.coreos.com kinds, unless a real install has them."""
    installed = []
    for path in MONITORING_CRDS:
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        if kubectl("get", "crd", name, "-o", "name", check=False).returncode == 0:
            continue
        kubectl("apply", "-f", str(path))
        installed.append(name)
    for name in installed:
        kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
    try:
        yield
    finally:
        for name in installed:
            kubectl("delete", "crd", name, "--ignore-not-found", "--wait=false")


def dry_run(kubectl: Kubectl, documents: list[dict[str, Any]]) -> KubectlResult:
    body = yaml.safe_dump_all(documents)
    return kubectl("apply", "--dry-run=server", "-f", "-", input=body, check=False)


def test_the_rendered_objects_pass_server_side_dry_run(
    monitoring_crds: None,
    kubectl: Kubectl,
    make_namespace: NamespaceFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    namespace = make_namespace()
    helm = Helm.find(tmp_path_factory.mktemp("helm-home"))
    objects = monitoring_objects(helm.render(namespace=namespace, settings=ALL_ON))
    assert sorted(d["kind"] for d in objects) == [
        "ConfigMap",
        "PodMonitor",
        "PrometheusRule",
        "ServiceMonitor",
    ]
    done = dry_run(kubectl, objects)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == len(objects), done.stdout


MISTAKES = [
    pytest.param("ServiceMonitor", ("spec", "endpoints", 0), "tlsconfig", id="misspelled-field"),
    pytest.param("PodMonitor", ("spec", "podMetricsEndpoints", 0), "interval", id="bad-duration"),
    pytest.param("PrometheusRule", ("spec", "groups", 0, "rules", 0), "labels", id="non-string"),
]


@pytest.mark.parametrize(("kind", "where", "field"), MISTAKES)
def test_the_dry_run_would_catch_a_broken_object(
    monitoring_crds: None,
    kubectl: Kubectl,
    make_namespace: NamespaceFactory,
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    where: tuple[Any, ...],
    field: str,
) -> None:
    """The test CRDs are strict enough for the dry run above to mean something."""
    namespace = make_namespace()
    helm = Helm.find(tmp_path_factory.mktemp("helm-home"))
    (document,) = [
        d
        for d in monitoring_objects(helm.render(namespace=namespace, settings=ALL_ON))
        if d["kind"] == kind
    ]
    node: Any = document
    for step in where:
        node = node[step]
    broken = {"tlsconfig": {"insecure": True}, "interval": "every minute", "labels": {"n": 1}}
    node[field] = broken[field]
    done = dry_run(kubectl, [document])
    assert done.returncode != 0, done.stdout
