"""`mamori check` reads a file into the objects kubectl would apply from it (issue 9, item 2).

Each case is a file that kubectl (apimachinery's unstructured decoder, cli-runtime's YAML reader)
reads differently from a plain YAML parser. The privileged pod in it is what `kubectl apply`
creates, so check must judge it and deny. The same files are applied with the real kubectl in
tests/integration/test_check_kubectl_parity.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PRIVILEGED_POD = (
    "{apiVersion: v1, kind: Pod, metadata: {name: evil}, spec: {hostNetwork: true, "
    "containers: [{name: c, image: nginx, securityContext: {privileged: true}}]}}"
)
COMPLIANT_POD = """apiVersion: v1
kind: Pod
metadata: {name: fine}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: nginx
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
"""

# Files whose privileged pod kubectl creates, though a YAML parser alone sees none.
SMUGGLED = {
    "configmap-with-items": (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\nitems:\n- {PRIVILEGED_POD}\n"
    ),
    "compliant-pod-with-items": f"{COMPLIANT_POD}items:\n- {PRIVILEGED_POD}\n",
    "podlist-items-without-kind": (
        "apiVersion: v1\nkind: PodList\nitems:\n- {metadata: {name: evil}, spec: "
        "{hostNetwork: true, containers: [{name: c, image: nginx}]}}\n"
    ),
    "separator-followed-by-comment": (
        f"{COMPLIANT_POD.replace('name: fine', 'name: evil')}"
        "  hostNetwork: true\n---# x: y\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"
    ),
}

# Files kubectl refuses to apply at all: check must not call them clean.
REFUSED = {
    "list-in-a-list": (
        f"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n"
        f"  - {PRIVILEGED_POD}\n",
        "list inside a list",
    ),
    "items-without-kind": (f"items:\n- {PRIVILEGED_POD}\n", "has items but no kind"),
    "items-not-a-list": ("apiVersion: v1\nkind: List\nitems: {a: b}\n", "items must be a list"),
    "item-not-an-object": ("apiVersion: v1\nkind: List\nitems: [5]\n", "item 0 is not an object"),
    "text-after-separator": (
        f"{COMPLIANT_POD}--- {PRIVILEGED_POD}\n",
        "invalid document separator",
    ),
}


def check_json(path: Path) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "mamori.cli", "check", "--output", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.parametrize("name", sorted(SMUGGLED))
def test_what_kubectl_applies_is_judged(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SMUGGLED[name])
    code, report, stderr = check_json(path)
    assert code == 1, stderr
    denied = [r for r in report["results"] if not r["allowed"]]
    assert [(r["kind"], r["name"]) for r in denied] == [("Pod", "evil")]
    assert "host-namespaces" in {v["rule"] for v in denied[0]["violations"]}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_kubectl_refuses_is_an_input_error(tmp_path: Path, name: str) -> None:
    text, message = REFUSED[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    code, report, stderr = check_json(path)
    assert code == 2
    assert message in stderr and f"{name}.yaml" in stderr
    assert report["summary"]["errors"] == 1


def test_list_with_null_items_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\nitems: null\n")
    code, report, _ = check_json(path)
    assert code == 0
    assert report["summary"] == {"workloads": 0, "allowed": 0, "denied": 0, "skipped": 0}


def test_list_items_keep_their_position_and_line(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(
        f"{COMPLIANT_POD}---\n# a comment\n---\napiVersion: v1\nkind: List\nitems:\n"
        f"- {PRIVILEGED_POD}\n"
    )
    code, report, _ = check_json(path)
    assert code == 1
    first, second = report["results"]
    assert (first["name"], first["allowed"]) == ("fine", True)
    assert (second["name"], second["item"]) == ("evil", 0)
    text = subprocess.run(
        [sys.executable, "-m", "mamori.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    assert f"{path}:15 Pod default/evil: DENIED" in text
