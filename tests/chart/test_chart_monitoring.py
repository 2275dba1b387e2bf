"""The chart's monitoring objects as the real helm renders them: off by default, each behind its
switch, alerts that carry what Alertmanager and a person on call need, thresholds from values,
and queries (alerts and dashboard panels) that name only metrics the programs define and
docs/metrics.md describes. tests/integration/test_metrics_exported.py checks the same names
against the running processes and applies the objects to the real API server."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import generate_latest

from mamori_operator.metrics import Metrics
from mamori_webhook.metrics import AdmissionMetrics
from tests.chart.helm import CHART, Document, Helm, by_kind, one
from tests.chart.monitoring import (
    ALL_ON,
    DASHBOARD_FILE,
    alerts,
    dashboard_queries,
    is_dashboard,
    monitoring_objects,
)
from tests.metric_names import (
    balanced,
    documented,
    exported,
    headings,
    referenced,
    unknown,
)

NAMESPACE = "mamori-system"
# What the dashboard must show (issue 13), by the metric each panel reads.
DASHBOARD_MUST_READ = {
    "mamori_admission_requests_total",  # admission rate
    "mamori_admission_duration_seconds_bucket",  # latency
    "mamori_admission_violations_total",  # denials by rule
    "mamori_operator_leader",
    "mamori_operator_reconciles_total",
    "mamori_operator_pods_by_scan_status",
    "mamori_webhook_certificate_expiry_timestamp_seconds",
    "mamori_operator_certificate_expiry_timestamp_seconds",
}
EXPECTED_ALERTS = {
    "MamoriWebhookDown",
    "MamoriWebhookSlow",
    "MamoriWebhookErrors",
    "MamoriRegistryBudgetExhausted",
    "MamoriWebhookCertificateExpiresSoon",
    "MamoriOperatorNotLeading",
    "MamoriReconcileFailures",
    "MamoriVulnerablePods",
    "MamoriOperatorCertificateExpiresSoon",
}


@dataclass(frozen=True)
class ServedCertificate:
    """Stands in for the webhook's certificate reloader: only its notAfter is read."""

    not_after: datetime.datetime

    @property
    def current(self) -> ServedCertificate:
        return self


def in_process_families() -> dict[str, dict[str, str]]:
    """The metric families each program defines, read from its own registry."""
    webhook = AdmissionMetrics(certificates=ServedCertificate(datetime.datetime.now(datetime.UTC)))
    operator = Metrics()
    assert webhook.registry is not None
    return {
        "webhook": exported(generate_latest(webhook.registry).decode()),
        "operator": exported(generate_latest(operator.registry).decode()),
    }


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def all_on(helm: Helm) -> list[Document]:
    return helm.render(namespace=NAMESPACE, settings=ALL_ON)


@pytest.fixture(scope="module")
def families() -> dict[str, dict[str, str]]:
    return in_process_families()


# -- the switches --------------------------------------------------------------------------------


def monitoring_names(objects: list[Document]) -> set[tuple[str, str]]:
    return {(doc["kind"], doc["metadata"]["name"]) for doc in monitoring_objects(objects)}


SWITCHES = [
    pytest.param({}, set(), id="default-off"),
    pytest.param(
        {"monitoring.serviceMonitor.enabled": "true"},
        {("ServiceMonitor", "mamori-webhook"), ("PodMonitor", "mamori-operator")},
        id="service-monitor",
    ),
    pytest.param(
        {"monitoring.serviceMonitor.enabled": "true", "operator.enabled": "false"},
        {("ServiceMonitor", "mamori-webhook")},
        id="service-monitor-without-operator",
    ),
    pytest.param(
        {"monitoring.serviceMonitor.enabled": "true", "operator.metricsPort": "0"},
        {("ServiceMonitor", "mamori-webhook")},
        id="service-monitor-operator-metrics-off",
    ),
    pytest.param(
        {"monitoring.prometheusRule.enabled": "true"},
        {("PrometheusRule", "mamori")},
        id="prometheus-rule",
    ),
    pytest.param(
        {"monitoring.dashboard.enabled": "true"},
        {("ConfigMap", "mamori-dashboard")},
        id="dashboard",
    ),
    pytest.param(
        ALL_ON,
        {
            ("ServiceMonitor", "mamori-webhook"),
            ("PodMonitor", "mamori-operator"),
            ("PrometheusRule", "mamori"),
            ("ConfigMap", "mamori-dashboard"),
        },
        id="all-on",
    ),
]


@pytest.mark.parametrize(("settings", "expected"), SWITCHES)
def test_each_object_is_rendered_only_behind_its_switch(
    helm: Helm, settings: dict[str, str], expected: set[tuple[str, str]]
) -> None:
    assert monitoring_names(helm.render(namespace=NAMESPACE, settings=settings)) == expected


def test_helm_lint_is_clean_with_every_switch_on(helm: Helm) -> None:
    result = helm("lint", "--strict", str(CHART), *(f"--set={k}={v}" for k, v in ALL_ON.items()))
    assert "0 chart(s) failed" in result.stdout


def test_monitoring_objects_carry_the_charts_labels_and_namespace(all_on: list[Document]) -> None:
    for doc in monitoring_objects(all_on):
        assert doc["metadata"]["namespace"] == NAMESPACE
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "mamori"


@pytest.mark.parametrize(
    ("settings", "kind", "label"),
    [
        pytest.param(
            {"monitoring.serviceMonitor.labels.release": "kps"},
            "ServiceMonitor",
            ("release", "kps"),
            id="service-monitor",
        ),
        pytest.param(
            {"monitoring.serviceMonitor.labels.release": "kps"},
            "PodMonitor",
            ("release", "kps"),
            id="pod-monitor",
        ),
        pytest.param(
            {"monitoring.prometheusRule.labels.release": "kps"},
            "PrometheusRule",
            ("release", "kps"),
            id="prometheus-rule",
        ),
        pytest.param(
            {"monitoring.dashboard.labels.dashboards": "mamori"},
            "ConfigMap",
            ("dashboards", "mamori"),
            id="dashboard",
        ),
    ],
)
def test_extra_labels_reach_the_object_a_selector_looks_for(
    helm: Helm, settings: dict[str, str], kind: str, label: tuple[str, str]
) -> None:
    objects = helm.render(namespace=NAMESPACE, settings={**ALL_ON, **settings})
    found = [d for d in monitoring_objects(objects) if d["kind"] == kind]
    assert len(found) == 1
    key, value = label
    assert found[0]["metadata"]["labels"][key] == value


# -- scraping ------------------------------------------------------------------------------------


def test_the_service_monitor_scrapes_the_webhook_over_verified_tls(all_on: list[Document]) -> None:
    monitor = one(all_on, "ServiceMonitor")
    service = next(
        d for d in by_kind(all_on, "Service") if d["metadata"]["name"] == "mamori-webhook"
    )
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert (endpoint["scheme"], endpoint["path"]) == ("https", "/metrics")
    tls = endpoint["tlsConfig"]
    assert "insecureSkipVerify" not in tls
    assert tls["serverName"] == f"mamori-webhook.{NAMESPACE}.svc"
    assert tls["ca"]["secret"] == {"name": "mamori-webhook-tls", "key": "ca.crt"}
    mounted = {
        volume["secret"]["secretName"]
        for d in by_kind(all_on, "Deployment")
        for volume in d["spec"]["template"]["spec"]["volumes"]
        if "secret" in volume
    }
    assert tls["ca"]["secret"]["name"] in mounted


def test_the_pod_monitor_scrapes_the_operators_metrics_port(all_on: list[Document]) -> None:
    monitor = one(all_on, "PodMonitor")
    operator = next(
        d
        for d in by_kind(all_on, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    )
    pod_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = operator["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert endpoint["port"] in {port["name"] for port in ports}
    assert endpoint["relabelings"] == [
        {"action": "replace", "targetLabel": "job", "replacement": "mamori-operator"}
    ]


# -- alerts --------------------------------------------------------------------------------------


def test_every_alert_is_routed_explained_and_has_a_runbook(all_on: list[Document]) -> None:
    named = alerts(all_on)
    assert set(named) == EXPECTED_ALERTS
    anchors = headings()
    for name, rule in named.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        base, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert base == "docs/metrics.md", name
        assert anchor == name.lower() and anchor in anchors, f"{name}: no heading #{anchor}"
        assert rule["for"], name


def test_alert_queries_are_balanced_and_read_only_metrics_we_define(
    all_on: list[Document], families: dict[str, dict[str, str]]
) -> None:
    ours = {**families["webhook"], **families["operator"]}
    for name, rule in alerts(all_on).items():
        expression = rule["expr"]
        assert balanced(expression), f"{name}: {expression}"
        names = referenced(expression)
        assert names, f"{name} reads no metric: {expression}"
        assert unknown(names, ours) == set(), f"{name}: {expression}"


def test_alerts_select_the_series_the_monitors_label(all_on: list[Document]) -> None:
    named = alerts(all_on)
    webhook = 'job="mamori-webhook", namespace="mamori-system"'
    operator = 'job="mamori-operator", namespace="mamori-system"'
    assert webhook in named["MamoriWebhookDown"]["expr"]
    assert webhook in named["MamoriWebhookSlow"]["expr"]
    assert operator in named["MamoriOperatorNotLeading"]["expr"]
    assert operator in named["MamoriVulnerablePods"]["expr"]


THRESHOLDS = [
    pytest.param(
        {"monitoring.prometheusRule.alerts.webhookSlow.p99Seconds": 0.5},
        "MamoriWebhookSlow",
        "> 0.5",
        id="slow-p99",
    ),
    pytest.param(
        {"monitoring.prometheusRule.alerts.webhookErrors.ratio": 0.2},
        "MamoriWebhookErrors",
        "> 0.2",
        id="error-ratio",
    ),
    pytest.param(
        {"monitoring.prometheusRule.alerts.registryBudgetExhausted.window": "30m"},
        "MamoriRegistryBudgetExhausted",
        "mamori_webhook_registry_budget_exhausted_total{"
        'job="mamori-webhook", namespace="mamori-system"}[30m]',
        id="registry-budget-window",
    ),
    pytest.param(
        {"monitoring.prometheusRule.alerts.certificateExpiry.days": 7},
        "MamoriWebhookCertificateExpiresSoon",
        "< 7 * 86400",
        id="certificate-days",
    ),
    pytest.param(
        {"monitoring.prometheusRule.alerts.reconcileFailures.window": "1h"},
        "MamoriReconcileFailures",
        "[1h]",
        id="reconcile-window",
    ),
    pytest.param(
        {"monitoring.prometheusRule.alerts.vulnerablePods.threshold": 3},
        "MamoriVulnerablePods",
        "> 3",
        id="vulnerable-threshold",
    ),
    pytest.param(
        {"monitoring.prometheusRule.webhookSelector": 'job="scraped-my-way"'},
        "MamoriWebhookDown",
        'up{job="scraped-my-way"}',
        id="webhook-selector",
    ),
]


@pytest.mark.parametrize(("settings", "alert", "text"), THRESHOLDS)
def test_thresholds_come_from_values(
    helm: Helm, settings: dict[str, Any], alert: str, text: str
) -> None:
    # --set-json: plain --set turns 0.5 into a string, which the schema rightly refuses
    as_json = [f"--set-json={key}={json.dumps(value)}" for key, value in settings.items()]
    objects = helm.render(
        namespace=NAMESPACE,
        settings={"monitoring.prometheusRule.enabled": "true"},
        extra=as_json,
    )
    assert text in alerts(objects)[alert]["expr"]


@pytest.mark.parametrize(
    ("settings", "absent"),
    [
        pytest.param(
            {"monitoring.prometheusRule.alerts.webhookSlow.enabled": "false"},
            {"MamoriWebhookSlow"},
            id="one-alert-off",
        ),
        pytest.param(
            {"operator.enabled": "false"},
            {
                "MamoriOperatorNotLeading",
                "MamoriReconcileFailures",
                "MamoriVulnerablePods",
                "MamoriOperatorCertificateExpiresSoon",
            },
            id="no-operator",
        ),
        pytest.param(
            {"certificates.mode": "certManager"},
            {"MamoriOperatorCertificateExpiresSoon"},
            id="cert-manager-keeps-the-certificates",
        ),
    ],
)
def test_alerts_follow_what_is_installed(
    helm: Helm, settings: dict[str, str], absent: set[str]
) -> None:
    objects = helm.render(
        namespace=NAMESPACE, settings={"monitoring.prometheusRule.enabled": "true", **settings}
    )
    assert set(alerts(objects)) == EXPECTED_ALERTS - absent


@pytest.mark.parametrize(
    ("setting", "value", "alert", "field", "expected"),
    [
        pytest.param("severity", "critical", "MamoriVulnerablePods", "severity", "critical",
                     id="severity"),
        pytest.param("for", "30m", "MamoriVulnerablePods", "for", "30m", id="for"),
    ],
)  # fmt: skip
def test_severity_and_duration_come_from_values(
    helm: Helm, setting: str, value: str, alert: str, field: str, expected: str
) -> None:
    objects = helm.render(
        namespace=NAMESPACE,
        settings={
            "monitoring.prometheusRule.enabled": "true",
            f"monitoring.prometheusRule.alerts.vulnerablePods.{setting}": value,
        },
    )
    rule = alerts(objects)[alert]
    assert (rule["labels"]["severity"] if field == "severity" else rule["for"]) == expected


# -- the dashboard -------------------------------------------------------------------------------


def test_the_dashboard_configmap_carries_the_file_for_the_sidecar(all_on: list[Document]) -> None:
    configmap = next(d for d in all_on if is_dashboard(d))
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["mamori.json"]) == json.loads(DASHBOARD_FILE.read_text())


def test_the_dashboard_namespace_can_be_grafanas(helm: Helm) -> None:
    objects = helm.render(
        namespace=NAMESPACE,
        settings={
            "monitoring.dashboard.enabled": "true",
            "monitoring.dashboard.namespace": "grafana",
        },
    )
    (configmap,) = [d for d in objects if is_dashboard(d)]
    assert configmap["metadata"]["namespace"] == "grafana"


def test_dashboard_queries_are_balanced_and_read_only_metrics_we_define(
    families: dict[str, dict[str, str]],
) -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    ours = {**families["webhook"], **families["operator"]}
    read: set[str] = set()
    for where, query in dashboard_queries(dashboard):
        assert balanced(query), f"{where}: {query}"
        names = referenced(query)
        assert names, f"{where} reads no metric: {query}"
        assert unknown(names, ours) == set(), f"{where}: {query}"
        read |= names
    assert DASHBOARD_MUST_READ - read == set()


def test_dashboard_panels_have_unique_ids_and_a_place_on_the_grid() -> None:
    panels = json.loads(DASHBOARD_FILE.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


# -- docs/metrics.md -----------------------------------------------------------------------------


@pytest.mark.parametrize(("program", "section"), [("webhook", "Webhook metrics"),
                                                  ("operator", "Operator metrics")])  # fmt: skip
def test_docs_list_exactly_the_metrics_each_program_defines(
    families: dict[str, dict[str, str]], program: str, section: str
) -> None:
    listed = documented(section)
    defined = set(families[program])
    assert {"missing from docs/metrics.md": defined - listed, "not defined": listed - defined} == {
        "missing from docs/metrics.md": set(),
        "not defined": set(),
    }
