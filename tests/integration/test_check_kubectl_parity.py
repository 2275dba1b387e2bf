"""`mamori check` judges exactly the pods that `kubectl apply -f` creates from the same file.

Each file is applied for real with the pinned kubectl into a fresh namespace; the pods that
exist afterwards are compared with the pods `mamori check` judged. Files kubectl refuses
create nothing, and check must then exit 2 rather than call them clean (issue 9, item 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster_fixtures import Kubectl

pytestmark = pytest.mark.integration


def pod(name: str, *, kind: bool = True) -> str:
    """A privileged hostNetwork pod in flow style; without ``kind`` it names no kind/apiVersion."""
    head = "apiVersion: v1, kind: Pod, " if kind else ""
    return (
        f"{{{head}metadata: {{name: {name}}}, spec: {{hostNetwork: true, containers: "
        "[{name: c, image: nginx, securityContext: {privileged: true}}]}}"
    )


COMPLIANT = """apiVersion: v1
kind: Pod
metadata: {name: fine}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: nginx
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
"""

APPLIED = {
    "configmap-with-items": (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\nitems:\n- {pod('evil')}\n"
    ),
    "compliant-pod-with-items": f"{COMPLIANT}items:\n- {pod('evil')}\n",
    "podlist-items-without-kind": (
        f"apiVersion: v1\nkind: PodList\nitems:\n- {pod('evil', kind=False)}\n- {pod('evil2')}\n"
    ),
    "list-of-two": f"apiVersion: v1\nkind: List\nitems:\n- {pod('evil')}\n- {pod('evil2')}\n",
    "separator-followed-by-comment": (
        f"{pod('evil')}\n---# x: y\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\n"
    ),
    "empty-and-comment-documents": f"---\n# nothing\n---\n---\n{COMPLIANT}---\n{pod('evil')}\n",
    "items-null": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\nitems: null\n",
}

REFUSED = {
    "list-in-a-list": (
        f"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n"
        f"  - {pod('evil')}\n"
    ),
    "items-without-kind": f"items:\n- {pod('evil')}\n",
    "items-not-a-list": "apiVersion: v1\nkind: List\nitems: {a: b}\n",
    "text-after-separator": f"{COMPLIANT}--- {pod('evil')}\n",
}


def judged_pods(path: Path, *, namespace: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mamori.cli",
            "check",
            "--output",
            "json",
            "--namespace",
            namespace,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr
    results = json.loads(done.stdout)["results"]
    return done.returncode, {r["name"] for r in results if r["kind"] == "Pod"}


def created_pods(kubectl: Kubectl, namespace: str) -> set[str]:
    listing = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)
    return {item["metadata"]["name"] for item in listing["items"]}


@pytest.mark.parametrize("name", sorted(APPLIED))
def test_check_judges_the_pods_kubectl_creates(
    kubectl: Kubectl, namespace: str, tmp_path: Path, name: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(APPLIED[name])
    kubectl("apply", "-n", namespace, "-f", str(path), check=name != "items-null")
    created = created_pods(kubectl, namespace)
    code, judged = judged_pods(path, namespace=namespace)
    assert judged == created
    assert code == (1 if any(p.startswith("evil") for p in created) else 0)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_files_kubectl_refuses_are_input_errors(
    kubectl: Kubectl, namespace: str, tmp_path: Path, name: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(REFUSED[name])
    applied = kubectl("apply", "-n", namespace, "-f", str(path), check=False)
    assert applied.returncode != 0
    assert created_pods(kubectl, namespace) == set()
    code, judged = judged_pods(path, namespace=namespace)
    assert code == 2
    assert judged == set()
