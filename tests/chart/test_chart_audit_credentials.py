"""The operator's audit gets the webhook's other registry credentials from the same values
(``webhook.registry.ecr``, ``webhook.registry.podPullSecrets``), under its own settings, and the
reads they need: ``get`` on Secrets for the operator, and ``get`` on ServiceAccounts for the
webhook (a pod template's), only with ``podPullSecrets``."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from mamori.settings import convert, env_name
from mamori_operator.config import OperatorConfig
from tests.chart.helm import Document, Helm, by_kind, container_env
from tests.chart.test_chart_registry import NAMESPACE, operator_pod

AUDIT_ENV = (
    "MAMORI_REGISTRY_ECR_CREDENTIALS",
    "MAMORI_REGISTRY_ECR_ENDPOINT",
    "MAMORI_REGISTRY_POD_PULL_SECRETS",
)
ENDPOINT = "https://ecr.registry.example"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm-home"))


def audit_env(objects: list[Document]) -> dict[str, Any]:
    env = container_env(operator_pod(objects))
    return {name: value for name, value in env.items() if name in AUDIT_ENV}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({}, {}, id="off"),
        pytest.param(
            {"webhook.registry.ecr.enabled": "true"},
            {"MAMORI_REGISTRY_ECR_CREDENTIALS": "true"},
            id="ecr",
        ),
        pytest.param(
            {"webhook.registry.ecr.enabled": "true", "webhook.registry.ecr.endpoint": ENDPOINT},
            {"MAMORI_REGISTRY_ECR_CREDENTIALS": "true", "MAMORI_REGISTRY_ECR_ENDPOINT": ENDPOINT},
            id="ecr-endpoint",
        ),
        pytest.param({"webhook.registry.ecr.endpoint": ENDPOINT}, {}, id="ecr-endpoint-while-off"),
        pytest.param(
            {"webhook.registry.podPullSecrets": "true"},
            {"MAMORI_REGISTRY_POD_PULL_SECRETS": "true"},
            id="pod-pull-secrets",
        ),
    ],
)
def test_the_audit_gets_the_webhooks_ecr_and_pull_secret_settings(
    helm: Helm, settings: dict[str, str], expected: dict[str, str]
) -> None:
    env = audit_env(helm.render(namespace=NAMESPACE, settings=settings))
    assert env == expected
    hints = typing.get_type_hints(OperatorConfig)
    fields = {env_name(field): field.name for field in dataclasses.fields(OperatorConfig)}
    for name, value in env.items():
        convert(value, hints[fields[name]], source=name)


def core_rules(objects: list[Document], component: str, resource: str) -> list[dict[str, Any]]:
    """The cluster-wide rules on ``resource`` (the operator's Role in its own namespace may get
    its certificate Secrets by name: not what this is about)."""
    return [
        rule
        for role in by_kind(objects, "ClusterRole")
        if role["metadata"]["labels"]["app.kubernetes.io/component"] == component
        for rule in role["rules"]
        if resource in rule["resources"]
    ]


GET = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
GET_ACCOUNTS = [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}]


@pytest.mark.parametrize(
    ("settings", "operator_secrets", "webhook_accounts"),
    [
        pytest.param({}, [], [], id="off"),
        pytest.param(
            {"webhook.registry.credentialsSecret": "registry-pull"}, [], [], id="mounted-only"
        ),
        pytest.param({"webhook.registry.podPullSecrets": "true"}, GET, GET_ACCOUNTS, id="on"),
        pytest.param(
            {"webhook.registry.podPullSecrets": "true", "rbac.create": "false"},
            [],
            [],
            id="rbac-left-to-the-user",
        ),
    ],
)
def test_the_reads_are_granted_only_with_pod_pull_secrets(
    helm: Helm,
    settings: dict[str, str],
    operator_secrets: list[dict[str, Any]],
    webhook_accounts: list[dict[str, Any]],
) -> None:
    """get only (no list, no watch): each reads the objects a pod or template names."""
    objects = helm.render(namespace=NAMESPACE, settings=settings)
    assert core_rules(objects, "operator", "secrets") == operator_secrets
    assert core_rules(objects, "webhook", "serviceaccounts") == webhook_accounts
    assert core_rules(objects, "operator", "serviceaccounts") == []
