"""docs/install-eks.md stays true: every shell block not marked *EKS only* runs, in order, in one
bash session against a real kube-apiserver with the helm and kubectl built here.

The guide ends by uninstalling and deleting mamori's CRDs, so it gets a control plane of its own
instead of the session's shared one (other tests rely on those CRDs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mamori.settings import SettingsError, load_settings
from mamori_dev.controlplane import ControlPlaneError, ControlPlaneSettings, LocalControlPlane
from tests.chart.helm import ROOT, Helm

pytestmark = pytest.mark.integration

GUIDE = ROOT / "docs" / "install-eks.md"
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
EKS_ONLY = "# EKS only"
# What the skipped EKS-only push step would have exported.
FROM_EKS_ONLY_STEPS = {"DIGEST": "sha256:" + "0123456789abcdef" * 4}


def blocks(lang: str) -> list[str]:
    return [m["body"] for m in FENCE.finditer(GUIDE.read_text()) if m["lang"] == lang]


def runnable_blocks() -> list[str]:
    return [body for body in blocks("sh") if not body.startswith(EKS_ONLY)]


@pytest.fixture(scope="module")
def private_control_plane() -> Iterator[LocalControlPlane]:
    try:
        settings = load_settings(ControlPlaneSettings, None, os.environ)
    except SettingsError as error:
        pytest.fail(f"control plane settings: {error}", pytrace=False)
    control_plane = LocalControlPlane(settings)
    try:
        control_plane.start()
    except ControlPlaneError as error:
        pytest.fail(f"the local control plane did not start:\n{error}", pytrace=False)
    try:
        yield control_plane
    finally:
        control_plane.stop()


def test_the_guide_marks_what_needs_eks_and_keeps_the_rest_runnable() -> None:
    eks_only = [body for body in blocks("sh") if body.startswith(EKS_ONLY)]
    assert len(eks_only) >= 6 and len(runnable_blocks()) >= 8
    for body in eks_only:
        assert body.splitlines()[0].startswith("# EKS only: "), "say why it needs EKS"
    for body in runnable_blocks():
        assert not re.search(r"\baws |\bdocker ", body), f"unmarked AWS/Docker command:\n{body}"


def test_the_iam_policy_is_valid_json_and_read_only() -> None:
    (policy,) = [json.loads(body) for body in blocks("json")]
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert actions == {
        "ecr:DescribeImageScanFindings",
        "inspector2:ListFindings",
        "inspector2:ListCoverage",
    }
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])


def test_every_command_that_can_run_here_runs(
    private_control_plane: LocalControlPlane, tmp_path: Path
) -> None:
    helm = Helm.find(tmp_path / "helm-home")  # fails (never skips) without `make helm`
    steps = []
    for number, body in enumerate(runnable_blocks(), start=1):
        steps.append(f"echo '--- block {number}'\n{body}")
    script = "set -euo pipefail\n" + "\n".join(steps)
    path_dirs = [str(helm.binary.parent), str(private_control_plane.kubectl.parent)]
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))},
        **FROM_EKS_ONLY_STEPS,
        "PATH": os.pathsep.join([*path_dirs, os.environ.get("PATH", "")]),
        "KUBECONFIG": str(private_control_plane.kubeconfig),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    output = done.stdout
    assert f"--- block {len(runnable_blocks())}" in output  # every block ran
    assert "arn:aws:iam::123456789012:role/mamori-operator" in output  # IRSA annotation set
    assert "true ClusterFirstWithHostNet" in output  # hostNetwork switch
    assert re.search(r"^Ignore$", output, re.MULTILINE) is None  # break glass was undone
    assert re.search(r"^Fail$", output, re.MULTILINE)
