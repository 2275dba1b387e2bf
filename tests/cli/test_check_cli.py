"""`mamori check` through a real subprocess: exit codes, JSON shape, errors on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PRODUCTION = EXAMPLES / "policies" / "production.yaml"

RESULT_KEYS = {"source", "document", "kind", "namespace", "name", "allowed", "violations"}
VIOLATION_KEYS = {"rule", "policy", "enforcement", "container", "field", "message"}


def mamori(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mamori.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def check_json(*args: str, stdin: str | None = None) -> tuple[int, dict[str, Any], str]:
    done = mamori("check", "--output", "json", *args, stdin=stdin)
    return done.returncode, json.loads(done.stdout), done.stderr


def assert_schema(document: dict[str, Any]) -> None:
    assert set(document) <= {"results", "summary", "errors"}
    assert set(document["summary"]) >= {"workloads", "allowed", "denied", "skipped"}
    for result in document["results"]:
        assert set(result) >= RESULT_KEYS
        assert isinstance(result["allowed"], bool)
        for violation in result["violations"]:
            assert set(violation) == VIOLATION_KEYS
            assert violation["enforcement"] in ("Enforce", "Warn", "Audit")
            assert violation["field"] and violation["message"]


def test_compliant_manifests_exit_zero() -> None:
    code, document, stderr = check_json(str(EXAMPLES / "good"))
    assert code == 0, stderr
    assert_schema(document)
    assert document["summary"] == {"workloads": 2, "allowed": 2, "denied": 0, "skipped": 0}


def test_root_pod_is_denied_with_every_violation() -> None:
    code, document, _ = check_json(str(EXAMPLES / "bad" / "root-pod.yaml"))
    assert code == 1
    assert_schema(document)
    [result] = document["results"]
    assert result["allowed"] is False
    assert (result["kind"], result["namespace"], result["name"]) == ("Pod", "shop", "root-shell")
    rules = {v["rule"] for v in result["violations"]}
    assert {
        "run-as-non-root",
        "run-as-user",
        "seccomp-profile",
        "allow-privilege-escalation",
        "capabilities",
    } <= rules
    run_as_user = next(v for v in result["violations"] if v["rule"] == "run-as-user")
    assert run_as_user["container"] == "shell"
    assert run_as_user["field"] == "spec.containers[0].securityContext.runAsUser"


def test_cronjob_paths_point_into_the_job_template() -> None:
    code, document, _ = check_json(
        "--policy", str(PRODUCTION), str(EXAMPLES / "bad" / "untrusted-cronjob.yaml")
    )
    assert code == 1
    violations = document["results"][0]["violations"]
    assert {v["rule"] for v in violations} == {"trusted-registry", "image-digest"}
    assert {v["field"] for v in violations} == {
        "spec.jobTemplate.spec.template.spec.containers[0].image"
    }
    assert {v["policy"] for v in violations} == {"production"}


def test_text_output_names_rule_field_and_summary() -> None:
    done = mamori("check", str(EXAMPLES / "bad" / "privileged-daemonset.yaml"))
    assert done.returncode == 1
    assert "DaemonSet monitoring/node-agent: DENIED" in done.stdout
    assert "[host-namespaces] spec.template.spec.hostNetwork" in done.stdout
    assert "[privileged] spec.template.spec.containers[0].securityContext.privileged" in done.stdout
    assert done.stdout.rstrip().endswith(
        "1 workloads: 0 allowed, 1 denied; 0 other objects skipped"
    )


def test_stdin_list_and_skipped_kinds() -> None:
    manifest = """
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings}
  - apiVersion: v1
    kind: Pod
    metadata: {name: p}
    spec:
      containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Service
metadata: {name: s}
"""
    code, document, _ = check_json("-", stdin=manifest)
    assert code == 1
    assert document["summary"] == {"workloads": 1, "allowed": 0, "denied": 1, "skipped": 2}
    assert document["results"][0]["source"] == "<stdin>"
    assert document["results"][0]["namespace"] == "default"


def test_warn_policy_allows_with_findings(tmp_path: Path) -> None:
    policy = tmp_path / "warn.yaml"
    policy.write_text(
        "apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\n"
        "metadata: {name: soft}\nspec: {enforcement: Warn}\n"
    )
    code, document, _ = check_json("--policy", str(policy), str(EXAMPLES / "bad" / "root-pod.yaml"))
    assert code == 0
    [result] = document["results"]
    assert result["allowed"] is True
    assert result["violations"] and {v["enforcement"] for v in result["violations"]} == {"Warn"}


def test_exempt_namespace_is_allowed(tmp_path: Path) -> None:
    policy = tmp_path / "exempt.yaml"
    policy.write_text(
        "apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\n"
        "metadata: {name: p}\nspec: {exemptNamespaces: [shop]}\n"
    )
    code, document, _ = check_json("--policy", str(policy), str(EXAMPLES / "bad" / "root-pod.yaml"))
    assert code == 0
    assert document["results"][0]["violations"] == []


def test_invalid_yaml_is_an_input_error_with_line_and_the_rest_is_still_judged(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.yaml").write_text("apiVersion: v1\nkind: Pod\nspec: [unclosed\n")
    (tmp_path / "ok.yaml").write_text((EXAMPLES / "good" / "web-deployment.yaml").read_text())
    code, document, stderr = check_json(str(tmp_path))
    assert code == 2
    assert_schema(document)
    assert "broken.yaml:" in stderr and "invalid YAML" in stderr
    assert document["errors"][0]["line"] is not None
    assert document["summary"]["workloads"] == 1 and document["summary"]["errors"] == 1


@pytest.mark.parametrize(
    ("args", "stderr_part"),
    [
        pytest.param(
            ["check", "/nonexistent/x.yaml"], "/nonexistent/x.yaml: no such file", id="missing-file"
        ),
        pytest.param(["check"], "the following arguments are required: PATH", id="no-path"),
        pytest.param(["check", "--output", "xml", "x"], "invalid choice: 'xml'", id="bad-output"),
        pytest.param(["frobnicate"], "invalid choice: 'frobnicate'", id="bad-command"),
    ],
)
def test_usage_and_input_errors_exit_two(args: list[str], stderr_part: str) -> None:
    done = mamori(*args)
    assert done.returncode == 2
    assert stderr_part in done.stderr


def test_invalid_policy_names_the_field(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\n"
        "metadata: {name: p}\nspec: {enforcement: enforce}\n"
    )
    done = mamori("check", "--policy", str(policy), str(EXAMPLES / "good"))
    assert done.returncode == 2
    assert 'policy "p": spec.enforcement: must be one of Enforce, Warn, Audit, got "enforce"' in (
        done.stderr
    )


def test_non_object_document_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    done = mamori("check", str(tmp_path / "list.yaml"))
    assert done.returncode == 2
    assert "list.yaml:1: document 0 is a list, not an object" in done.stderr


@pytest.mark.parametrize(
    ("spec", "noted"),
    [("{vulnerabilities: {severityThreshold: HIGH}}", True), ("{enforcement: Warn}", False)],
)
def test_a_scan_gate_it_cannot_judge_offline_is_said_not_passed(
    tmp_path: Path, spec: str, noted: bool
) -> None:
    """Offline there are no ImageScans: the text report says the rule was not checked."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\n"
        f"metadata: {{name: scans}}\nspec: {spec}\n"
    )
    done = mamori("check", "--policy", str(policy), str(EXAMPLES / "bad" / "root-pod.yaml"))
    assert done.returncode in (0, 1), done.stderr
    note = "note: image-vulnerabilities was not checked: mamori check has no scan results"
    assert (note in done.stdout) is noted
