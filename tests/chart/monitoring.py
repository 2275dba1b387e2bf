"""The chart's monitoring objects, read the way the tests need them: alerts by name, every query
of the Grafana dashboard, and the switches that turn them all on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.chart.helm import CHART, Document, by_kind

ALL_ON = {
    "monitoring.serviceMonitor.enabled": "true",
    "monitoring.prometheusRule.enabled": "true",
    "monitoring.dashboard.enabled": "true",
}
MONITORING_KINDS = frozenset({"ServiceMonitor", "PodMonitor", "PrometheusRule"})
DASHBOARD_FILE = CHART / "dashboards" / "mamori.json"
DASHBOARD_KEY = "mamori.json"


def is_dashboard(doc: Document) -> bool:
    return doc["kind"] == "ConfigMap" and DASHBOARD_KEY in doc.get("data", {})


def monitoring_objects(objects: list[Document]) -> list[Document]:
    """The ServiceMonitor, PodMonitor, PrometheusRule and dashboard ConfigMap rendered."""
    return [doc for doc in objects if doc["kind"] in MONITORING_KINDS or is_dashboard(doc)]


def alerts(objects: list[Document]) -> dict[str, dict[str, Any]]:
    """Alert name → rule, over every PrometheusRule; fails when two alerts share a name."""
    rules = [
        rule
        for document in by_kind(objects, "PrometheusRule")
        for group in document["spec"]["groups"]
        for rule in group["rules"]
    ]
    named = {rule["alert"]: rule for rule in rules}
    assert len(named) == len(rules), "two alerts share a name"
    return named


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target and every query variable of a dashboard."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["query"]


def rendered_queries(objects: list[Document]) -> dict[str, str]:
    """where → PromQL, for every alert and every query of every rendered dashboard."""
    queries = {f"alert {name}": rule["expr"] for name, rule in alerts(objects).items()}
    for doc in objects:
        if is_dashboard(doc):
            queries.update(dashboard_queries(json.loads(doc["data"][DASHBOARD_KEY])))
    return queries
