"""`mamori check` starts fast: a run imports only what its input needs.

Start-up is most of a CI run over a few manifests, and PyYAML alone costs about 10 ms to import:
plain manifests are read without it, and a manifest that needs it (anchors, multi-line
scalars…) loads it and is judged exactly the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PLAIN = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: "nginx:1.25"
    securityContext:
      capabilities:
        drop: ["ALL"]
"""
# The same pod in YAML that only PyYAML reads here: an anchor, a folded scalar, nested flow.
FANCY = """\
apiVersion: v1
kind: Pod
metadata:
  name: &name web
spec:
  containers:
  - name: app
    image: >-
      nginx:1.25
    securityContext:
      capabilities: {drop: [ALL]}
"""
PROBE = """\
import io, json, sys
from contextlib import redirect_stdout
from mamori.cli import main
report = io.StringIO()
with redirect_stdout(report):
    code = main(["check", sys.argv[1]])
heavy = ("yaml", "flask", "kopf", "kubernetes", "boto3", "cryptography")
print(json.dumps({"code": code, "report": report.getvalue(),
                  "loaded": sorted(name for name in heavy if name in sys.modules)}))
"""


def check_in_fresh_interpreter(tmp_path: Path, text: str) -> dict[str, object]:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(manifest)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_plain_manifests_are_checked_without_importing_pyyaml(tmp_path: Path) -> None:
    result = check_in_fresh_interpreter(tmp_path, PLAIN)
    assert result["code"] == 1  # runs as root, no seccomp profile: denied
    assert "DENIED" in str(result["report"])
    assert result["loaded"] == []


def test_manifests_that_need_pyyaml_load_it_and_get_the_same_verdict(tmp_path: Path) -> None:
    plain = check_in_fresh_interpreter(tmp_path, PLAIN)
    fancy = check_in_fresh_interpreter(tmp_path, FANCY)
    assert fancy["loaded"] == ["yaml"]
    assert (fancy["code"], fancy["report"]) == (plain["code"], plain["report"])
