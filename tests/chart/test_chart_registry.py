"""The chart's registry access for signed images (``webhook.registry``): each setting reaches the
webhook as the setting it reads, with its file mounted read-only, and nothing of it is there when
it is not set; Secrets are readable only with ``podPullSecrets``; NOTES warns when the API
server's timeout leaves no room for the registry budget."""

from __future__ import annotations

import dataclasses
import json
import shutil
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mamori.settings import convert, env_name
from mamori_operator.config import OperatorConfig
from mamori_webhook.settings import WebhookSettings
from tests.chart.helm import CHART, Document, Helm, by_kind, container_env, documents

NAMESPACE = "mamori-system"
SCENARIO = CHART / "ci" / "signatures-values.yaml"
CA_FILE = "/etc/mamori/registry-ca/ca.crt"
CREDENTIALS_FILE = "/etc/mamori/registry-credentials/config.json"
OPTIONAL_ENV = (
    "MAMORI_REGISTRY_CA_FILE",
    "MAMORI_REGISTRY_CREDENTIALS",
    "MAMORI_ECR_CREDENTIALS",
    "MAMORI_ECR_ENDPOINT",
    "MAMORI_POD_PULL_SECRETS",
)
REGISTRY_VOLUMES = ("registry-ca", "registry-credentials")
SIGNATURES = json.dumps(
    [{"images": ["registry.example/team"], "cosign": {"publicKeys": ["(a PEM key)"]}}]
)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm-home"))


def webhook_pod(objects: list[Document]) -> dict[str, Any]:
    [found] = [
        doc
        for doc in by_kind(objects, "Deployment")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
    ]
    return found


def registry_env(objects: list[Document]) -> dict[str, Any]:
    env = container_env(webhook_pod(objects))
    return {name: value for name, value in env.items() if name in OPTIONAL_ENV}


def registry_volumes(objects: list[Document]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """name → (volume, its mount) of the webhook's registry volumes."""
    spec = webhook_pod(objects)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"] if m["name"] in REGISTRY_VOLUMES}
    volumes = {v["name"]: v for v in spec["volumes"] if v["name"] in REGISTRY_VOLUMES}
    assert set(mounts) == set(volumes), "a registry volume without its mount, or the reverse"
    return {name: (volumes[name], mounts[name]) for name in volumes}


CA_IN_CONFIGMAP = {
    "configMap": {
        "name": "registry-ca",
        "defaultMode": 0o444,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
}
CA_IN_SECRET = {
    "secret": {
        "secretName": "corp-roots",
        "defaultMode": 0o444,
        "items": [{"key": "bundle.pem", "path": "ca.crt"}],
    }
}
PULL_SECRET = {
    "secret": {
        "secretName": "registry-pull",
        "defaultMode": 0o440,
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }
}


@pytest.mark.parametrize(
    ("settings", "env", "volumes"),
    [
        pytest.param({}, {}, {}, id="nothing-set"),
        pytest.param(
            {"webhook.registry.caBundle.name": "registry-ca"},
            {"MAMORI_REGISTRY_CA_FILE": CA_FILE},
            {"registry-ca": CA_IN_CONFIGMAP},
            id="ca-from-configmap",
        ),
        pytest.param(
            {
                "webhook.registry.caBundle.kind": "Secret",
                "webhook.registry.caBundle.name": "corp-roots",
                "webhook.registry.caBundle.key": "bundle.pem",
            },
            {"MAMORI_REGISTRY_CA_FILE": CA_FILE},
            {"registry-ca": CA_IN_SECRET},
            id="ca-from-secret",
        ),
        pytest.param(
            {"webhook.registry.caBundle.kind": "Secret"},
            {},
            {},
            id="ca-kind-without-name",
        ),
        pytest.param(
            {"webhook.registry.credentialsSecret": "registry-pull"},
            {"MAMORI_REGISTRY_CREDENTIALS": CREDENTIALS_FILE},
            {"registry-credentials": PULL_SECRET},
            id="credentials-secret",
        ),
        pytest.param(
            {"webhook.registry.ecr.enabled": "true"},
            {"MAMORI_ECR_CREDENTIALS": "true"},
            {},
            id="ecr",
        ),
        pytest.param(
            {
                "webhook.registry.ecr.enabled": "true",
                "webhook.registry.ecr.endpoint": "https://ecr.registry.example",
            },
            {
                "MAMORI_ECR_CREDENTIALS": "true",
                "MAMORI_ECR_ENDPOINT": "https://ecr.registry.example",
            },
            {},
            id="ecr-endpoint",
        ),
        pytest.param(
            {"webhook.registry.ecr.endpoint": "https://ecr.registry.example"},
            {},
            {},
            id="ecr-endpoint-while-off",
        ),
        pytest.param(
            {"webhook.registry.podPullSecrets": "true"},
            {"MAMORI_POD_PULL_SECRETS": "true"},
            {},
            id="pod-pull-secrets",
        ),
    ],
)
def test_registry_access_reaches_the_webhook_only_when_set(
    helm: Helm,
    settings: dict[str, str],
    env: dict[str, str],
    volumes: dict[str, dict[str, Any]],
) -> None:
    objects = helm.render(namespace=NAMESPACE, settings=settings)
    assert registry_env(objects) == env
    mounted = registry_volumes(objects)
    assert {name: volume for name, (volume, _) in mounted.items()} == {
        name: {"name": name, **source} for name, source in volumes.items()
    }
    for name, (_, mount) in mounted.items():
        assert mount["readOnly"] is True, name
        assert "subPath" not in mount, name  # a subPath mount never sees the Secret change
    for name, path in (("registry-ca", CA_FILE), ("registry-credentials", CREDENTIALS_FILE)):
        if name in mounted:  # the file the setting names is the one the volume projects
            volume, mount = mounted[name]
            source = volume.get("secret") or volume["configMap"]
            assert path == f"{mount['mountPath']}/{source['items'][0]['path']}"


def test_timings_always_reach_the_webhook(helm: Helm) -> None:
    defaults = container_env(webhook_pod(helm.render(namespace=NAMESPACE)))
    assert (
        defaults["MAMORI_REGISTRY_TIMEOUT"],
        defaults["MAMORI_REGISTRY_BUDGET"],
        defaults["MAMORI_REGISTRY_CACHE_TTL"],
    ) == ("1.5", "2", "30")
    settings = {f.name: f.default for f in dataclasses.fields(WebhookSettings)}
    assert (
        settings["registry_timeout"],
        settings["registry_budget"],
        settings["registry_cache_ttl"],
    ) == (1.5, 2.0, 30.0)  # the chart's defaults are the program's
    changed = container_env(
        webhook_pod(
            helm.render(
                namespace=NAMESPACE,
                settings={
                    "webhook.registry.timeout": "0.75",
                    "webhook.registry.budget": "4",
                    "webhook.registry.cacheTTL": "0",
                },
            )
        )
    )
    assert (
        changed["MAMORI_REGISTRY_TIMEOUT"],
        changed["MAMORI_REGISTRY_BUDGET"],
        changed["MAMORI_REGISTRY_CACHE_TTL"],
    ) == ("0.75", "4", "0")


def test_every_registry_variable_is_a_webhook_setting_of_the_right_type(helm: Helm) -> None:
    """Everything on (the CI scenario): each MAMORI_* is a setting the webhook has, and its value
    converts to that setting's type as `mamori webhook` converts it."""
    env = container_env(webhook_pod(helm.render(namespace=NAMESPACE, values=[SCENARIO])))
    assert set(OPTIONAL_ENV) <= set(env)
    hints = typing.get_type_hints(WebhookSettings)
    fields = {env_name(field): field.name for field in dataclasses.fields(WebhookSettings)}
    unknown = {name for name in env if name.startswith("MAMORI_")} - set(fields)
    assert not unknown, f"the webhook is given settings it does not have: {sorted(unknown)}"
    for name, value in env.items():
        if name.startswith("MAMORI_") and isinstance(value, str):
            convert(value, hints[fields[name]], source=name)


def test_the_webhook_service_account_carries_the_irsa_role(helm: Helm) -> None:
    objects = helm.render(namespace=NAMESPACE, values=[SCENARIO])
    account_name = webhook_pod(objects)["spec"]["template"]["spec"]["serviceAccountName"]
    [account] = [
        d for d in by_kind(objects, "ServiceAccount") if d["metadata"]["name"] == account_name
    ]
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/mamori-webhook"
    }


def secret_rules(objects: list[Document]) -> list[dict[str, Any]]:
    return [
        rule
        for role in [*by_kind(objects, "ClusterRole"), *by_kind(objects, "Role")]
        if role["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
        for rule in role["rules"]
        if "secrets" in rule["resources"]
    ]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({}, [], id="off"),
        pytest.param(
            {"webhook.registry.credentialsSecret": "registry-pull"}, [], id="mounted-secret-only"
        ),
        pytest.param(
            {"webhook.registry.podPullSecrets": "true"},
            [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
            id="pod-pull-secrets",
        ),
        pytest.param(
            {"webhook.registry.podPullSecrets": "true", "rbac.create": "false"},
            [],
            id="rbac-left-to-the-user",
        ),
    ],
)
def test_the_webhook_may_read_secrets_only_for_pod_pull_secrets(
    helm: Helm, settings: dict[str, str], expected: list[dict[str, Any]]
) -> None:
    """get only (no list, no watch: the webhook reads the Secrets a pod names, by name)."""
    assert secret_rules(helm.render(namespace=NAMESPACE, settings=settings)) == expected


# -- NOTES ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose NOTES.txt is rendered by `helm template` (helm renders NOTES
    only on install, which needs a cluster): the same text, wrapped in a named template."""
    chart = tmp_path_factory.mktemp("notes") / "mamori"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes-under-test.tpl").write_text(
        '{{- define "notes-under-test" }}' + notes + "{{- end }}"
    )
    (chart / "templates" / "notes-under-test.yaml").write_text(
        'notes: {{ include "notes-under-test" . | toJson }}\n'
    )
    return chart


def rendered_notes(
    helm: Helm, chart: Path, settings: Mapping[str, str], *, signatures: bool
) -> str:
    args = ["template", "mamori", str(chart), f"--namespace={NAMESPACE}"]
    args += ["--show-only=templates/notes-under-test.yaml"]
    args += [f"--set={key}={value}" for key, value in settings.items()]
    if signatures:
        args.append(f"--set-json=policy.imageSignatures={SIGNATURES}")
    [document] = documents(helm(*args).stdout)
    return str(document["notes"])


WARNING = "WARNING: webhook.timeoutSeconds is"


@pytest.mark.parametrize(
    ("settings", "signatures", "warned"),
    [
        pytest.param({}, False, False, id="nothing-asks-registries"),
        pytest.param({}, True, False, id="signatures-timeout-3-budget-2"),
        pytest.param({"webhook.registry.budget": "2.5"}, True, True, id="budget-2.5-timeout-3"),
        pytest.param({"webhook.timeoutSeconds": "2"}, True, True, id="timeout-2-budget-2"),
        pytest.param(
            {"webhook.timeoutSeconds": "5", "webhook.registry.timeout": "3"},
            True,
            False,
            id="a-long-request-timeout-is-capped-by-the-budget",
        ),
        pytest.param(
            {"webhook.timeoutSeconds": "10", "webhook.registry.budget": "9.5"},
            True,
            True,
            id="budget-nearly-the-timeout",
        ),
        pytest.param(
            {"policy.resolveImageTags": "true", "webhook.timeoutSeconds": "2"},
            False,
            True,
            id="tag-resolution",
        ),
        pytest.param(
            {"webhook.registry.credentialsSecret": "registry-pull", "webhook.timeoutSeconds": "2"},
            False,
            True,
            id="credentials-for-policies-of-your-own",
        ),
        pytest.param({"policy.create": "false"}, True, False, id="no-chart-policy"),
    ],
)
def test_notes_warn_when_the_timeout_leaves_no_room_for_the_registry_budget(
    helm: Helm, notes_chart: Path, settings: dict[str, str], signatures: bool, warned: bool
) -> None:
    notes = rendered_notes(helm, notes_chart, settings, signatures=signatures)
    assert (WARNING in notes) is warned, notes
    if warned:
        assert "docs/supply-chain.md" in notes


def test_notes_say_what_registry_access_the_webhook_has(helm: Helm, notes_chart: Path) -> None:
    notes = rendered_notes(
        helm,
        notes_chart,
        {
            "webhook.timeoutSeconds": "10",
            "webhook.registry.credentialsSecret": "registry-pull",
            "webhook.registry.ecr.enabled": "true",
        },
        signatures=True,
    )
    assert "signed images required (1 entry in spec.imageSignatures)" in notes
    assert "credentials from Secret registry-pull, Amazon ECR tokens" in notes
    assert WARNING not in notes
    assert "registry access" not in rendered_notes(helm, notes_chart, {}, signatures=False)


def operator_pod(objects: list[Document]) -> dict[str, Any]:
    [found] = [
        doc
        for doc in by_kind(objects, "Deployment")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    return found


def test_the_operator_audits_signatures_with_the_same_registry_access(helm: Helm) -> None:
    """The background audit asks the same registries with the same CA and credentials: the
    operator gets the same files, mounted the same way, and settings it has (ECR and the pods'
    pull Secrets under its own names: tests/chart/test_chart_audit_credentials.py)."""
    objects = helm.render(namespace=NAMESPACE, values=[SCENARIO])
    operator, webhook = operator_pod(objects), webhook_pod(objects)
    env = container_env(operator)
    assert env["MAMORI_REGISTRY_CA_FILE"] == CA_FILE
    assert env["MAMORI_REGISTRY_CREDENTIALS"] == CREDENTIALS_FILE
    for name in ("MAMORI_REGISTRY_TIMEOUT", "MAMORI_REGISTRY_BUDGET"):
        assert env[name] == container_env(webhook)[name]
    assert "MAMORI_ECR_CREDENTIALS" not in env and "MAMORI_POD_PULL_SECRETS" not in env
    hints = typing.get_type_hints(OperatorConfig)
    fields = {env_name(field): field.name for field in dataclasses.fields(OperatorConfig)}
    for name, value in env.items():
        if name.startswith("MAMORI_REGISTRY_"):
            convert(value, hints[fields[name]], source=name)

    def files(pod: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        spec = pod["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        return (
            [v for v in spec["volumes"] if v["name"] in REGISTRY_VOLUMES],
            [m for m in container["volumeMounts"] if m["name"] in REGISTRY_VOLUMES],
        )

    assert files(operator) == files(webhook)
    assert len(files(operator)[0]) == 2
    bare = helm.render(namespace=NAMESPACE)
    assert not any(
        name.startswith("MAMORI_REGISTRY_C") for name in container_env(operator_pod(bare))
    )
