"""`make kind-up kind-install` cannot run here (no Docker), so what it would do is checked:
the kind cluster's shape, and that the exact helm command it runs renders a valid install."""

from __future__ import annotations

import itertools
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import CHART, ROOT, Helm, by_kind, documents

KIND_CONFIG = ROOT / "kind-config.yaml"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm-home"))


def make_dry_run(*targets: str) -> list[str]:
    """The commands make would run (``make -n``), continuation lines joined."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *targets, "HELM=helm"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.replace("\\\n", " ").splitlines()


def test_the_kind_cluster_has_workers_in_three_zones() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    zones = {node["labels"]["topology.kubernetes.io/zone"] for node in config["nodes"][1:]}
    assert len(zones) == 3  # the webhook's three replicas spread over zones as on EKS


def test_kind_up_creates_the_cluster_from_the_config_once() -> None:
    (script,) = [line for line in make_dry_run("kind-up") if "create cluster" in line]
    assert "--config kind-config.yaml" in script
    assert "get clusters" in script  # idempotent: an existing cluster is kept


def test_kind_install_builds_loads_installs_and_tests(helm: Helm, tmp_path: Path) -> None:
    commands = make_dry_run("kind-install")
    assert any(c.startswith("docker build --tag mamori:dev") for c in commands)
    assert any(c.startswith("kind load docker-image mamori:dev") for c in commands)
    assert any(c.startswith("helm test mamori") for c in commands)
    (install,) = [c for c in commands if c.startswith("helm upgrade --install")]

    # The same chart, values and namespace, rendered instead of installed.
    words = shlex.split(install)
    assert words[2:5] == ["--install", "mamori", "charts/mamori"]
    arguments = []
    for flag, value in itertools.pairwise(words):
        if flag in ("--set", "--namespace"):
            arguments += [flag, value]
    objects = documents(helm("template", "mamori", str(CHART), *arguments).stdout)
    for deployment in by_kind(objects, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "mamori:dev"
        assert container["imagePullPolicy"] == "Never"  # loaded into kind, never pulled
    (configuration,) = by_kind(objects, "ValidatingWebhookConfiguration")
    skipped = configuration["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert "local-path-storage" in skipped  # kind's storage provisioner keeps restarting freely
