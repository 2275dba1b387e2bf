"""The chart's PolicyReport switches: CRDs only when asked for and absent, RBAC and the operator's
settings only when reports are on; the CRDs accepted by the real API server, and a CRD that
another release or tool installed never taken over."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mamori.settings import load_settings
from mamori_operator.config import OperatorConfig
from tests.chart.helm import Document, Helm, by_kind, container_env, documents
from tests.cluster_fixtures import Kubectl

NAMESPACE = "mamori-system"
CRD_TEMPLATES = ("templates/policyreport-crd.yaml", "templates/clusterpolicyreport-crd.yaml")
CRD_NAMES = ("policyreports.wgpolicyk8s.io", "clusterpolicyreports.wgpolicyk8s.io")
RELEASE_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
ON = {"policyReports.enabled": "true"}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm-home"))


def render(helm: Helm, **settings: str) -> list[Document]:
    return helm.render(namespace=NAMESPACE, settings=settings)


def crds(objects: list[Document]) -> dict[str, Document]:
    return {doc["metadata"]["name"]: doc for doc in by_kind(objects, "CustomResourceDefinition")}


def operator_deployment(objects: list[Document]) -> Document:
    [found] = [
        doc
        for doc in by_kind(objects, "Deployment")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    return found


def report_rules(objects: list[Document]) -> list[dict[str, Any]]:
    [role] = [
        doc
        for doc in by_kind(objects, "ClusterRole")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    return [rule for rule in role["rules"] if "wgpolicyk8s.io" in rule["apiGroups"]]


def report_env(objects: list[Document]) -> dict[str, Any]:
    env = container_env(operator_deployment(objects))
    return {name: value for name, value in env.items() if "POLICY_REPORT" in name}


@pytest.mark.parametrize(
    ("settings", "installed", "enabled"),
    [
        pytest.param({}, False, False, id="default-off"),
        pytest.param(
            {"policyReports.installCRDs": "true"}, False, False, id="crds-alone-install-nothing"
        ),
        pytest.param(ON, True, True, id="on"),
        pytest.param({**ON, "policyReports.installCRDs": "false"}, False, True, id="on-no-crds"),
    ],
)
def test_the_switches(helm: Helm, settings: dict[str, str], installed: bool, enabled: bool) -> None:
    objects = render(helm, **settings)
    assert sorted(crds(objects)) == (sorted(CRD_NAMES) if installed else [])
    assert bool(report_rules(objects)) is enabled
    assert bool(report_env(objects)) is enabled


def test_the_crds_are_ours_kept_on_uninstall_and_listed_by_kubectl(helm: Helm) -> None:
    found = crds(render(helm, **ON))
    for name, scope, short in (
        ("policyreports.wgpolicyk8s.io", "Namespaced", "polr"),
        ("clusterpolicyreports.wgpolicyk8s.io", "Cluster", "cpolr"),
    ):
        crd = found[name]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["spec"]["scope"] == scope
        assert crd["spec"]["names"]["shortNames"] == [short]
        [version] = crd["spec"]["versions"]
        assert version["name"] == "v1alpha2" and version["served"] and version["storage"]
        columns = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
        assert columns == ["Pass", "Fail", "Warn", "Error", "Skip", "Age"]
        result = version["schema"]["openAPIV3Schema"]["properties"]["results"]["items"]
        assert result["properties"]["result"]["enum"] == ["pass", "fail", "warn", "error", "skip"]


def test_the_operator_may_touch_reports_and_nothing_else_of_the_group(helm: Helm) -> None:
    assert report_rules(render(helm, **ON)) == [
        {
            "apiGroups": ["wgpolicyk8s.io"],
            "resources": ["policyreports", "clusterpolicyreports"],
            "verbs": ["list", "create", "patch", "delete"],
        }
    ]


def test_the_limits_reach_the_operator_settings(helm: Helm) -> None:
    objects = render(
        helm, **ON, **{"policyReports.maxResults": "250", "policyReports.maxBytes": "2000000"}
    )
    env = {
        k: v
        for k, v in container_env(operator_deployment(objects)).items()
        if k
        in {
            "MAMORI_POLICY_REPORTS",
            "MAMORI_POLICY_REPORT_MAX_RESULTS",
            "MAMORI_POLICY_REPORT_MAX_BYTES",
        }
    }
    config = load_settings(OperatorConfig, None, env)
    assert (
        config.policy_reports,
        config.policy_report_max_results,
        config.policy_report_max_bytes,
    ) == (True, 250, 2_000_000)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"policyReports.maxBytes": "1000"}, id="too-small"),
        pytest.param({"policyReports.maxResults": "0"}, id="no-results"),
        pytest.param({"policyReports.enabled": "yes"}, id="not-a-boolean"),
    ],
)
def test_the_schema_refuses_bad_values(helm: Helm, settings: dict[str, str]) -> None:
    args = [f"--set={k}={v}" for k, v in settings.items() if k != "policyReports.enabled"]
    args += [f"--set-string={k}={v}" for k, v in settings.items() if k == "policyReports.enabled"]
    result = helm.template(namespace=NAMESPACE, extra=args, check=False)
    assert result.returncode != 0
    assert "policyReports" in result.stderr


# -- against the real API server ----------------------------------------------------------------


@pytest.mark.integration
def test_the_api_server_accepts_the_crds(helm: Helm, kubectl: Kubectl) -> None:
    rendered = helm.template(
        namespace=NAMESPACE,
        settings=ON,
        extra=tuple(f"--show-only={template}" for template in CRD_TEMPLATES),
    ).stdout
    # server-side apply: the CRDs may exist already (another test, another tool), and a
    # client-side apply would warn about the missing last-applied annotation
    result = kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input=rendered,
    )
    accepted = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == 2, result.stdout + result.stderr
    assert "Warning" not in result.stderr, result.stderr


@pytest.fixture
def installed_crd(helm: Helm, kubectl: Kubectl) -> Iterator[str]:
    """The PolicyReport CRD in the cluster (as another tool would have put it); its release
    annotations are put back as they were after the test."""
    name = CRD_NAMES[0]
    if kubectl("get", "crd", name, check=False).returncode != 0:
        rendered = helm.template(
            namespace=NAMESPACE, settings=ON, extra=(f"--show-only={CRD_TEMPLATES[0]}",)
        ).stdout
        [body] = documents(rendered)
        body["metadata"].pop("annotations")
        kubectl("create", "-f", "-", input=json.dumps(body))
    before = json.loads(kubectl("get", "crd", name, "-o", "json").stdout)["metadata"]
    try:
        yield name
    finally:
        annotations = before.get("annotations") or {}
        restore = [f"{key}={annotations[key]}" for key in RELEASE_ANNOTATIONS if key in annotations]
        restore += [f"{key}-" for key in RELEASE_ANNOTATIONS if key not in annotations]
        kubectl("annotate", "--overwrite", "crd", name, *restore)


def annotate(kubectl: Kubectl, crd: str, release: str | None) -> None:
    if release is None:
        changes = [f"{key}-" for key in RELEASE_ANNOTATIONS]
    else:
        changes = [f"{RELEASE_ANNOTATIONS[0]}={release}", f"{RELEASE_ANNOTATIONS[1]}={NAMESPACE}"]
    kubectl("annotate", "--overwrite", "crd", crd, *changes)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("owner", "rendered"),
    [
        pytest.param(None, False, id="another-tool"),
        pytest.param("kyverno", False, id="another-release"),
        pytest.param("mamori", True, id="this-release"),
    ],
)
def test_a_crd_that_is_not_ours_is_left_alone(
    helm: Helm,
    kubectl: Kubectl,
    kubeconfig: Path,
    installed_crd: str,
    owner: str | None,
    rendered: bool,
) -> None:
    """helm's ``lookup`` sees the live CRD: only the release that installed it renders it."""
    annotate(kubectl, installed_crd, owner)
    result = helm.with_kubeconfig(kubeconfig).template(
        release="mamori",
        namespace=NAMESPACE,
        settings=ON,
        extra=("--dry-run=server", f"--show-only={CRD_TEMPLATES[0]}"),
        check=False,
    )
    if rendered:
        assert result.returncode == 0, result.stderr
        assert [doc["metadata"]["name"] for doc in yaml.safe_load_all(result.stdout) if doc] == [
            installed_crd
        ]
    else:
        # helm refuses --show-only of a template that rendered nothing
        assert result.returncode != 0
        assert "could not find template" in result.stderr
