"""The chart as rendered by the real helm: lint, every scenario, and the promises it makes
(least-privilege RBAC, a webhook that cannot lock the cluster, hardened pods, a schema that
rejects typos, flags the programs actually read, and a chart that passes its own policy)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mamori.policy import parse_policy
from mamori.policy.fieldtypes import Section
from mamori.policy.shape import SPEC
from mamori.settings import env_name, load_settings
from mamori.workloads import WORKLOAD_KINDS
from mamori_operator.certificates.settings import CertificateSettings
from mamori_operator.config import OperatorConfig
from mamori_webhook.settings import WebhookSettings
from tests.chart.helm import (
    CHART,
    SCENARIOS,
    Document,
    Helm,
    by_kind,
    container_env,
    one,
)

NAMESPACE = "mamori-system"
SCENARIO_IDS = ["default", *(path.stem for path in SCENARIOS)]
SCENARIO_FILES: dict[str, tuple[Path, ...]] = {
    "default": (),
    **{path.stem: (path,) for path in SCENARIOS},
}
MAIN_WEBHOOK = "validate.mamori.io"
STATUS_WEBHOOK = "status-annotations.mamori.io"
ALLOWED_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
Render = Callable[..., list[Document]]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def scenario_objects(helm: Helm) -> dict[str, list[Document]]:
    """Every scenario rendered once for the module."""
    return {
        name: helm.render(namespace=NAMESPACE, values=files)
        for name, files in SCENARIO_FILES.items()
    }


@pytest.fixture
def default(scenario_objects: dict[str, list[Document]]) -> list[Document]:
    return scenario_objects["default"]


def pod_specs(objects: list[Document]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in objects:
        if doc["kind"] == "Deployment":
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield doc["metadata"]["name"], doc["spec"]


def deployment(objects: list[Document], component: str) -> Document:
    found = [
        doc
        for doc in by_kind(objects, "Deployment")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1, f"expected one {component} Deployment"
    return found[0]


def webhook_entries(objects: list[Document]) -> dict[str, Document]:
    """The ValidatingWebhookConfiguration's entries by name (names are unique, checked here)."""
    entries = one(objects, "ValidatingWebhookConfiguration")["webhooks"]
    named = {entry["name"]: entry for entry in entries}
    assert len(named) == len(entries), "two webhook entries share a name"
    return named


def main_webhook(objects: list[Document]) -> Document:
    """The entry that judges pods and workloads."""
    return webhook_entries(objects)[MAIN_WEBHOOK]


# -- helm's own checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_helm_lint_is_clean(helm: Helm, scenario: str) -> None:
    values = [f"--values={path}" for path in SCENARIO_FILES[scenario]]
    result = helm("lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_every_scenario_renders_the_whole_install(
    scenario_objects: dict[str, list[Document]], scenario: str
) -> None:
    objects = scenario_objects[scenario]
    kinds = {doc["kind"] for doc in objects}
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
        "ClusterSecurityPolicy",
        "Pod",
    } <= kinds
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "ClusterSecurityPolicy",
        "CustomResourceDefinition",  # the PolicyReport CRDs, when the cluster has none
    }
    for doc in objects:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "mamori"
        assert labels["app.kubernetes.io/instance"] == "mamori"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


# -- RBAC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_rbac_has_no_wildcards_and_only_plain_verbs(
    scenario_objects: dict[str, list[Document]], scenario: str
) -> None:
    roles = [d for d in scenario_objects[scenario] if d["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                values = rule.get(field, [])
                assert not any("*" in value for value in values), (role["metadata"], rule)
            assert set(rule["verbs"]) <= ALLOWED_VERBS, rule  # no escalate, bind, impersonate


READS = {
    (group, resource, verb)
    for group, resource in (
        ("mamori.io", "clustersecuritypolicies"),
        ("mamori.io", "imagescans"),
        ("", "namespaces"),
    )
    for verb in ("get", "list", "watch")
}
EVENT_WRITES = {("", "events", "create"), ("", "events", "patch")}
# the Secrets a pod names, and the ServiceAccount a pod template runs as, one by one
PULL_SECRET_READS = {("", "secrets", "get"), ("", "serviceaccounts", "get")}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, READS | EVENT_WRITES),
        ({"webhook.events.enabled": "false"}, READS),
        ({"webhook.registry.podPullSecrets": "true"}, READS | EVENT_WRITES | PULL_SECRET_READS),
    ],
    ids=["events-on", "events-off", "pod-pull-secrets"],
)
def test_the_webhook_reads_what_admission_judges_with_and_writes_only_events(
    helm: Helm, settings: dict[str, str], expected: set[tuple[str, str, str]]
) -> None:
    """Read-only on policies, ImageScans and namespace labels (and, for pods' imagePullSecrets,
    get on Secrets and ServiceAccounts); its one write is Events about its answers (create, and
    patch to count repeats), gone when events are switched off."""
    role = next(
        d
        for d in by_kind(helm.render(settings=settings), "ClusterRole")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
    )
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == expected


def test_secrets_and_webhook_configuration_are_granted_by_name(default: list[Document]) -> None:
    """The operator may touch two Secrets and one webhook configuration, named; nothing else."""
    for role in [*by_kind(default, "Role"), *by_kind(default, "ClusterRole")]:
        for rule in role["rules"]:
            sensitive = {"secrets", "validatingwebhookconfigurations"} & set(rule["resources"])
            if sensitive and rule["verbs"] != ["create"]:
                assert rule.get("resourceNames"), rule
    role = one(default, "Role")
    secret_rule = next(
        r for r in role["rules"] if r["resources"] == ["secrets"] and r.get("resourceNames")
    )
    assert set(secret_rule["resourceNames"]) == {"mamori-webhook-tls", "mamori-webhook-ca"}
    assert not any(
        "secrets" in rule["resources"]
        for cluster_role in by_kind(default, "ClusterRole")
        for rule in cluster_role["rules"]
    )


def test_cert_manager_mode_takes_certificate_rights_away(
    scenario_objects: dict[str, list[Document]],
) -> None:
    objects = scenario_objects["cert-manager-values"]
    for role in [*by_kind(objects, "Role"), *by_kind(objects, "ClusterRole")]:
        for rule in role["rules"]:
            assert not {"secrets", "validatingwebhookconfigurations"} & set(rule["resources"])
    assert "MAMORI_MANAGE_CERTIFICATES" not in container_env(deployment(objects, "operator"))


# -- the webhook configuration -------------------------------------------------------------------


def test_the_default_webhook_configuration_cannot_lock_the_cluster(default: list[Document]) -> None:
    webhook = main_webhook(default)
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["timeoutSeconds"] == 3
    assert webhook["sideEffects"] == "NoneOnDryRun"  # Events about answers, none on dry runs
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert "caBundle" not in webhook["clientConfig"]  # the operator keeps it; helm never blanks it
    assert webhook["clientConfig"]["service"] == {
        "name": "mamori-webhook",
        "namespace": NAMESPACE,
        "path": "/validate",
        "port": 443,
    }
    expressions = webhook["namespaceSelector"]["matchExpressions"]
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["kube-system", "kube-node-lease", NAMESPACE],
    } in expressions


def test_rules_cover_pods_debug_containers_and_every_workload_kind(
    default: list[Document],
) -> None:
    webhook = main_webhook(default)
    covered = {
        (group, resource): set(rule["operations"])
        for rule in webhook["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert covered[("", "pods/ephemeralcontainers")] == {"UPDATE"}
    plural = {
        "Pod": "pods",
        "PodTemplate": "podtemplates",
        "ReplicationController": "replicationcontrollers",
        "Deployment": "deployments",
        "ReplicaSet": "replicasets",
        "StatefulSet": "statefulsets",
        "DaemonSet": "daemonsets",
        "Job": "jobs",
        "CronJob": "cronjobs",
    }
    assert set(plural) == set(WORKLOAD_KINDS), "a workload kind the engine reads is not routed"
    for kind, spec in WORKLOAD_KINDS.items():
        groups = spec.groups - {"extensions"}  # long gone from the API server
        for group in groups:
            assert covered[(group, plural[kind])] == {"CREATE", "UPDATE"}, kind


def test_without_events_the_webhook_declares_no_side_effects(helm: Helm) -> None:
    entries = webhook_entries(helm.render(settings={"webhook.events.enabled": "false"}))
    assert {entry["sideEffects"] for entry in entries.values()} == {"None"}


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_the_status_entry_shares_everything_but_what_it_sends(
    scenario: str, scenario_objects: dict[str, list[Document]]
) -> None:
    """pods/status goes to the same webhook, fails the same way, covers the same namespaces."""
    entries = webhook_entries(scenario_objects[scenario])
    assert set(entries) == {MAIN_WEBHOOK, STATUS_WEBHOOK}
    main, status = entries[MAIN_WEBHOOK], entries[STATUS_WEBHOOK]
    own = {"name", "rules", "matchConditions"}
    shared = {key: value for key, value in main.items() if key not in own}
    assert {key: value for key, value in status.items() if key not in own} == shared
    assert {"clientConfig", "failurePolicy", "timeoutSeconds", "namespaceSelector"} <= set(shared)
    assert (status["sideEffects"], status["admissionReviewVersions"]) == ("NoneOnDryRun", ["v1"])
    assert status["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["pods/status"],
        }
    ]
    assert "matchConditions" not in main


def test_only_status_writes_that_change_mamori_annotations_are_sent(
    default: list[Document],
) -> None:
    """The kubelet's status writes never reach the webhook: the API server's CEL filters them.
    What the expression decides is proven on the real API server in
    tests/integration/test_admission_annotations.py; here, that it is there and compares both."""
    (condition,) = webhook_entries(default)[STATUS_WEBHOOK]["matchConditions"]
    assert condition["name"] == "changes-mamori-annotations"
    expression = condition["expression"]
    assert "oldObject.metadata.annotations" in expression
    assert "object.metadata.annotations" in expression.replace("oldObject", "")
    assert "'mamori.io/'" in expression and "'.mamori.io/'" in expression
    assert "lowerAscii()" in expression  # key prefixes in any case, as the webhook compares them


def test_failure_policy_and_selectors_are_configurable(
    scenario_objects: dict[str, list[Document]],
) -> None:
    objects = scenario_objects["failure-policy-ignore-values"]
    webhook = main_webhook(objects)
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 10
    expressions = webhook["namespaceSelector"]["matchExpressions"]
    assert {"key": "mamori.io/skip", "operator": "DoesNotExist"} in expressions
    assert any(e["key"] == "kubernetes.io/metadata.name" for e in expressions)
    assert one(objects, "ClusterSecurityPolicy")["spec"]["enforcement"] == "Warn"


def test_url_override_replaces_the_service(helm: Helm) -> None:
    objects = helm.render(settings={"webhook.urlOverride": "https://127.0.0.1:9443/validate"})
    for webhook in webhook_entries(objects).values():
        assert webhook["clientConfig"] == {"url": "https://127.0.0.1:9443/validate"}
    refused = helm.template(settings={"webhook.urlOverride": "http://x/validate"}, check=False)
    assert refused.returncode != 0


def test_cert_manager_injects_the_ca_of_the_certificate_the_webhook_mounts(
    scenario_objects: dict[str, list[Document]],
) -> None:
    objects = scenario_objects["cert-manager-values"]
    configuration = one(objects, "ValidatingWebhookConfiguration")
    certificates = {d["metadata"]["name"]: d for d in by_kind(objects, "Certificate")}
    target = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    namespace, name = target.split("/")
    assert namespace == NAMESPACE
    serving = certificates[name]["spec"]
    volumes = deployment(objects, "webhook")["spec"]["template"]["spec"]["volumes"]
    mounted = next(v["secret"]["secretName"] for v in volumes if v["name"] == "tls")
    assert serving["secretName"] == mounted
    assert "mamori-webhook.mamori-system.svc" in serving["dnsNames"]
    assert serving["ipAddresses"] == ["10.0.0.42"]
    assert serving["privateKey"]["rotationPolicy"] == "Always"
    ca_issuer = next(d for d in by_kind(objects, "Issuer") if "ca" in d["spec"])
    assert serving["issuerRef"]["name"] == ca_issuer["metadata"]["name"]

    own_issuer = scenario_objects["cert-manager-issuer-values"]
    assert not by_kind(own_issuer, "Issuer")
    (certificate,) = by_kind(own_issuer, "Certificate")
    assert certificate["spec"]["issuerRef"]["kind"] == "ClusterIssuer"


# -- the pods -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_every_pod_is_hardened(scenario_objects: dict[str, list[Document]], scenario: str) -> None:
    for name, spec in pod_specs(scenario_objects[scenario]):
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, name
        assert isinstance(pod_context["runAsUser"], int) and pod_context["runAsUser"] > 0, name
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"] and container["resources"]["limits"], name


def test_the_webhook_is_built_to_stay_up(default: list[Document]) -> None:
    webhook = deployment(default, "webhook")
    spec = webhook["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    delay = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = int(container_env(webhook)["MAMORI_GRACEFUL_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > delay + graceful
    spread = {c["topologyKey"]: c["whenUnsatisfiable"] for c in pod["topologySpreadConstraints"]}
    assert spread == {
        "kubernetes.io/hostname": "DoNotSchedule",
        "topology.kubernetes.io/zone": "ScheduleAnyway",
    }
    budgets = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]
        for d in by_kind(default, "PodDisruptionBudget")
    }
    assert budgets["webhook"]["minAvailable"] == 1
    assert budgets["webhook"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/etc/mamori/tls"} <= mounts  # read-only root: scratch is an emptyDir


def test_the_operator_runs_a_hot_standby(default: list[Document]) -> None:
    operator = deployment(default, "operator")
    env = container_env(operator)
    assert operator["spec"]["replicas"] == 2
    assert env["MAMORI_IDENTITY"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MAMORI_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    role = one(default, "Role")
    lease_rule = next(
        r for r in role["rules"] if r.get("resourceNames") and "leases" in r["resources"]
    )
    assert lease_rule["resourceNames"] == [env["MAMORI_LEASE_NAME"]]


def test_host_network_mode(scenario_objects: dict[str, list[Document]]) -> None:
    webhook = deployment(scenario_objects["host-network-values"], "webhook")
    pod = webhook["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert container["ports"][0]["containerPort"] == 9443
    assert container_env(webhook)["MAMORI_LISTEN"] == "0.0.0.0:9443"
    assert webhook["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}


def test_irsa_annotation_and_region_reach_the_operator(
    scenario_objects: dict[str, list[Document]],
) -> None:
    objects = scenario_objects["scan-providers-values"]
    operator = deployment(objects, "operator")
    account = next(
        d
        for d in by_kind(objects, "ServiceAccount")
        if d["metadata"]["name"] == operator["spec"]["template"]["spec"]["serviceAccountName"]
    )
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/mamori-operator"
    }
    assert container_env(operator)["AWS_REGION"] == "ap-northeast-1"
    spec = one(objects, "ClusterSecurityPolicy")["spec"]
    assert spec["imageScan"]["providers"] == ["ecr", "trivy-operator"]
    assert spec["networkPolicy"]["allowedEgressCIDRs"] == ["10.0.0.0/16"]


def test_image_by_digest_wins_over_the_tag(helm: Helm) -> None:
    digest = "sha256:" + "ab" * 32
    objects = helm.render(settings={"image.repository": "example/mamori", "image.digest": digest})
    for _, spec in pod_specs(objects):
        assert spec["containers"][0]["image"] == f"example/mamori@{digest}"


# -- the programs read what the chart sets ------------------------------------------------------


def settings_fields(*classes: type) -> set[str]:
    return {env_name(field) for cls in classes for field in dataclasses.fields(cls)}


def test_every_mamori_variable_is_a_setting_the_program_reads(default: list[Document]) -> None:
    checks = {
        "webhook": settings_fields(WebhookSettings),
        "operator": settings_fields(OperatorConfig, CertificateSettings),
    }
    for component, known in checks.items():
        env = container_env(deployment(default, component))
        unknown = {name for name in env if name.startswith("MAMORI_")} - known
        assert not unknown, f"{component} is given settings it does not have: {unknown}"


def test_certificate_settings_name_the_objects_the_chart_creates(default: list[Document]) -> None:
    env = {
        k: v
        for k, v in container_env(deployment(default, "operator")).items()
        if isinstance(v, str)
    }
    settings = load_settings(CertificateSettings, None, env)  # validates every duration too
    assert settings.manage_certificates is True
    names = {(d["kind"], d["metadata"]["name"]) for d in default}
    assert ("ValidatingWebhookConfiguration", settings.certificate_webhook_configuration) in names
    assert ("Service", settings.certificate_service) in names
    volumes = deployment(default, "webhook")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls"} | {
        "secret": {
            "secretName": settings.certificate_secret,
            "defaultMode": 0o440,
            "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
        }
    } in volumes
    assert settings.certificate_ca_secret != settings.certificate_secret  # the key stays apart


# -- values and their schema ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        pytest.param("webhook.replica=3", "additional properties 'replica'", id="nested-typo"),
        pytest.param("webhok.replicas=3", "additional properties 'webhok'", id="top-level-typo"),
        pytest.param("webhook.failurePolicy=fail", "failurePolicy", id="enum-case"),
        pytest.param("webhook.timeoutSeconds=31", "timeoutSeconds", id="timeout-too-long"),
        pytest.param("webhook.port=10250", "port", id="kubelet-port"),
        pytest.param("webhook.replicas=three", "replicas", id="wrong-type"),
        pytest.param("certificates.overlap=15 minutes", "overlap", id="bad-duration"),
        pytest.param("policy.enforcement=Deny", "enforcement", id="unknown-enforcement"),
        pytest.param("image.digest=abc", "digest", id="digest-form"),
        pytest.param(
            "containerSecurityContext.readOnlyRootFileSystem=true",
            "additional properties 'readOnlyRootFileSystem'",
            id="security-context-typo",
        ),
        pytest.param("webhook.registry.timeout=0", "timeout", id="registry-timeout-zero"),
        pytest.param("webhook.registry.budget=2s", "budget", id="registry-budget-unit"),
        pytest.param("webhook.registry.caBundle.kind=configmap", "kind", id="ca-bundle-kind"),
        pytest.param(
            "webhook.registry.credentialsSecret=Registry_Pull",
            "credentialsSecret",
            id="secret-name",
        ),
        pytest.param(
            "webhook.registry.ecr.endpoint=ecr.example", "endpoint", id="ecr-endpoint-url"
        ),
        pytest.param(
            "webhook.registry.ecr.enable=true", "additional properties 'enable'", id="ecr-typo"
        ),
    ],
)
def test_the_schema_rejects_misspelled_and_mistyped_values(
    helm: Helm, setting: str, complaint: str
) -> None:
    result = helm("template", "mamori", str(CHART), f"--set={setting}", check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_the_schema_closes_every_object() -> None:
    """additionalProperties: false wherever properties are listed; maps say what they hold."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    free_form = {"global", "nodeAffinity", "podAffinity", "podAntiAffinity", "valueFrom"}

    def walk(node: Any, path: str) -> Iterator[str]:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                yield path
            if (
                node.get("type") == "object"
                and "properties" not in node
                and "additionalProperties" not in node
                and path.rsplit(".", 1)[-1] not in free_form
            ):
                yield path
            for key, child in node.items():
                yield from walk(child, f"{path}.{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                yield from walk(child, f"{path}[{index}]")

    assert list(walk(schema, "$")) == []


def test_every_value_is_documented_by_a_comment_that_starts_with_its_name() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^(?P<indent>\s*)(?P<name>[A-Za-z][\w-]*):")
    undocumented = []
    for number, line in enumerate(lines):
        match = key.match(line)
        if not match:
            continue
        name, indent = match["name"], match["indent"]
        above = number - 1
        while (
            above >= 0
            and lines[above].startswith(f"{indent}# ")
            and not lines[above].startswith(f"{indent}# {name} -- ")
        ):
            above -= 1  # continuation lines of the comment
        if above < 0 or not lines[above].startswith(f"{indent}# {name} -- "):
            undocumented.append(f"values.yaml:{number + 1}: {name}")
    assert undocumented == []


def test_the_schema_knows_every_value_and_every_value_is_in_the_file() -> None:
    """values.yaml and values.schema.json describe the same tree."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    definitions = schema["definitions"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = definitions[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def walk(value: Any, node: dict[str, Any], path: str, *, ours: bool = True) -> Iterator[str]:
        ours = ours and "$ref" not in node  # Kubernetes types (definitions) have optional fields
        node = resolve(node)
        properties = node.get("properties")
        if not isinstance(value, dict) or properties is None:
            return
        for key in value:
            if key not in properties:
                yield f"{path}.{key} is not in the schema"
            else:
                yield from walk(value[key], properties[key], f"{path}.{key}", ours=ours)
        if ours and value:
            for key in properties.keys() - value.keys() - {"global"}:
                yield f"{path}.{key} is in the schema but not in values.yaml"

    assert list(walk(values, schema, "$")) == []


# -- the policy: its spec is the policy values, whatever fields the declaration has ------------


def merged(base: Any, override: Any) -> Any:
    """helm's merge of a values file over values.yaml: maps merge, anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in override.items()}}
    return override


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_the_policy_spec_is_the_policy_values_without_the_charts_own_keys(
    scenario_objects: dict[str, list[Document]], scenario: str
) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in SCENARIO_FILES[scenario]:
        values = merged(values, yaml.safe_load(path.read_text()))
    expected = {
        key: value for key, value in values["policy"].items() if key not in ("create", "name")
    }
    for section in (
        f.name for f in SPEC.fields if isinstance(f.type, Section) and f.type.chart_toggle
    ):
        if expected[section].pop("enabled"):
            continue
        del expected[section]
    policy = one(scenario_objects[scenario], "ClusterSecurityPolicy")
    assert policy["metadata"]["name"] == values["policy"]["name"]
    assert policy["spec"] == expected
    parse_policy(policy)  # and mamori reads it


def test_a_new_spec_field_needs_no_template_edit(helm: Helm) -> None:
    """A value the template never names still reaches the spec (the schema is what limits it)."""
    objects = helm.render(settings={"policy.podSecurityVersion": "v1.33"})
    assert one(objects, "ClusterSecurityPolicy")["spec"]["podSecurityVersion"] == "v1.33"


def test_policy_create_false_installs_no_policy(helm: Helm) -> None:
    objects = helm.render(settings={"policy.create": "false"})
    assert by_kind(objects, "ClusterSecurityPolicy") == []


# -- dogfood: the chart passes its own policy ----------------------------------------------------


def mamori_check(rendered: list[Document], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """``mamori check`` of the rendered objects with the chart's own ClusterSecurityPolicy."""
    policy = one(rendered, "ClusterSecurityPolicy")
    manifests, policy_file = tmp_path / "rendered.yaml", tmp_path / "policy.yaml"
    manifests.write_text(yaml.safe_dump_all(rendered))
    policy_file.write_text(yaml.safe_dump(policy))
    argv = [sys.executable, "-P", "-m", "mamori.cli", "check", str(manifests)]
    argv += ["--policy", str(policy_file), "--namespace", NAMESPACE, "--output", "json"]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("scenario", ["default", "signatures-values"])
def test_dogfood_the_install_passes_its_own_policy(
    scenario_objects: dict[str, list[Document]], scenario: str, tmp_path: Path
) -> None:
    """The default install, and one with every registry volume mounted (a ConfigMap and a
    Secret: volume types the restricted level allows)."""
    rendered = scenario_objects[scenario]
    status, report = mamori_check(rendered, tmp_path)
    assert status == 0, json.dumps(report, indent=2)
    assert report["summary"]["workloads"] == 3  # webhook, operator, helm test pod
    assert report["summary"]["denied"] == 0
    assert [r["violations"] for r in report["results"]] == [[], [], []]  # not even a warning
    assert one(rendered, "ClusterSecurityPolicy")["spec"]["podSecurity"] == "restricted"


def test_dogfood_would_catch_a_weakened_pod(helm: Helm, tmp_path: Path) -> None:
    weakened = helm.render(
        namespace=NAMESPACE, settings={"containerSecurityContext.allowPrivilegeEscalation": "true"}
    )
    status, report = mamori_check(weakened, tmp_path)
    assert status == 1
    rules = {v["rule"] for r in report["results"] for v in r["violations"]}
    assert rules == {"allow-privilege-escalation"}
