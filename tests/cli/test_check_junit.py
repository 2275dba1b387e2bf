"""`mamori check --output junit`: a suite per file, a test per judged object, a failure per
denied object listing its violations at their fields' lines; Warn, Audit and advice shown but
never failing; input errors as test errors; the exit status unchanged."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from mamori.check import Result, judge
from mamori.dockerfile.judge import DockerfileOptions
from mamori.manifests import InputError
from mamori.policy import default_policy
from mamori.report.junit import write_junit
from tests.cli.test_check_cli import mamori

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCKERFILES = ROOT / "tests" / "fixtures" / "dockerfile" / "dockerfile-user" / "fail"
WARN_POLICY = """\
apiVersion: mamori.io/v1alpha1
kind: ClusterSecurityPolicy
metadata:
  name: nudge
spec:
  enforcement: Warn
  podSecurity: restricted
"""


def mamori_junit(*args: str, stdin: str = "", cwd: Path = ROOT) -> tuple[int, ET.Element, str]:
    done = mamori("check", "--output", "junit", *args, stdin=stdin, cwd=cwd)
    assert done.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return done.returncode, ET.fromstring(done.stdout), done.stderr


def test_a_suite_per_file_a_test_per_object_a_failure_per_denial() -> None:
    paths = ["examples/good", "examples/bad", str(DOCKERFILES / "root.Dockerfile")]
    code, report, _ = mamori_junit(*paths)
    assert code == 1
    assert report.tag == "testsuites"
    expected = [
        outcome
        for outcome in judge(paths, [default_policy()], locate=True)
        if isinstance(outcome, Result)
    ]
    per_source = Counter(result.document.source for result in expected)
    suites = report.findall("testsuite")
    assert [suite.get("name") for suite in suites] == list(per_source)
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases) == per_source[suite.get("name", "")]
        assert int(suite.get("failures", "")) == len(suite.findall("testcase/failure"))
        assert suite.get("errors") == "0"
    cases = report.findall("testsuite/testcase")
    assert len(cases) == len(expected)
    for case, result in zip(cases, expected, strict=True):
        assert case.get("name") == f"{result.kind} {result.namespace}/{result.name}"
        assert case.get("file") == case.get("classname") == result.document.source
        failure = case.find("failure")
        assert (failure is None) is result.decision.allowed
        if failure is None:
            continue
        listed = (failure.text or "").splitlines()
        assert len(listed) == len(result.decision.violations)
        for position, (line, violation) in enumerate(
            zip(listed, result.decision.violations, strict=True)
        ):
            assert line.startswith(f"line {result.lines[position]}: [{violation.rule}] ")
            assert violation.field in line and violation.message in line
        denied_rules = {v.rule for v in result.decision.denials}
        assert all(rule in (failure.get("message") or "") for rule in denied_rules)


def test_the_failure_names_the_offending_lines_of_the_file() -> None:
    code, report, _ = mamori_junit("examples/bad/root-pod.yaml")
    assert code == 1
    failure = report.find("testsuite/testcase/failure")
    assert failure is not None
    text = (EXAMPLES / "bad" / "root-pod.yaml").read_text().splitlines()
    [run_as_user] = [line for line in (failure.text or "").splitlines() if "[run-as-user]" in line]
    line = int(run_as_user.removeprefix("line ").split(":")[0])
    assert text[line - 1].strip() == "runAsUser: 0"


def test_warnings_are_shown_and_fail_nothing(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(WARN_POLICY)
    code, report, _ = mamori_junit("--policy", str(policy), "examples/bad/root-pod.yaml")
    assert code == 0
    [suite] = report.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
    [case] = suite.findall("testcase")
    assert case.find("failure") is None
    shown = (case.findtext("system-out") or "").splitlines()
    assert shown and all("(policy nudge, Warn)" in line for line in shown)
    assert any("[run-as-user]" in line for line in shown)


def test_input_errors_are_test_errors_and_exit_two(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Pod\nmetadata: {name: [x\n")
    code, report, stderr = mamori_junit(str(broken), "examples/good/web-deployment.yaml")
    assert code == 2
    assert str(broken) in stderr
    first, second = report.findall("testsuite")
    assert (first.get("name"), first.get("errors"), first.get("tests")) == (str(broken), "1", "1")
    error = first.find("testcase/error")
    assert error is not None and "invalid YAML" in (error.get("message") or "")
    assert (second.get("tests"), second.get("failures")) == ("1", "0")


def test_standard_input_is_one_suite() -> None:
    pod = (EXAMPLES / "bad" / "root-pod.yaml").read_text()
    code, report, _ = mamori_junit("-", stdin=pod)
    assert code == 1
    [suite] = report.findall("testsuite")
    assert suite.get("name") == "<stdin>"
    assert suite.find("testcase/failure") is not None


def test_notes_and_dockerfiles(tmp_path: Path) -> None:
    outcomes = judge(
        [str(DOCKERFILES / "root.Dockerfile")],
        [default_policy()],
        dockerfile_options=DockerfileOptions(hadolint=None),
    )
    stream = io.StringIO()
    errors: list[InputError] = []
    tally = write_junit(outcomes, stream, on_error=errors.append)
    assert tally.exit_code == 1 and not errors
    report = ET.fromstring(stream.getvalue())
    [suite] = report.findall("testsuite")
    assert "hadolint is not installed" in (suite.findtext("system-out") or "")
    [case] = suite.findall("testcase")
    assert (case.get("name") or "").startswith("Dockerfile ")
    failure = case.find("failure")
    assert failure is not None
    [user] = [line for line in (failure.text or "").splitlines() if "[dockerfile-user]" in line]
    line = int(user.removeprefix("line ").split(":")[0])
    assert (DOCKERFILES / "root.Dockerfile").read_text().splitlines()[line - 1] == "USER root"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("\x01bell", id="control-character"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param('a<b>&"c]]>', id="markup"),
    ],
)
def test_any_name_gives_well_formed_xml(tmp_path: Path, name: str) -> None:
    manifest = tmp_path / "pod.json"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"hostPID": True, "containers": [{"name": name, "image": "nginx:1.25"}]},
    }
    manifest.write_text(json.dumps(pod))
    code, report, _ = mamori_junit(str(manifest))
    assert code == 1
    [failure] = report.findall("testsuite/testcase/failure")
    assert "[host-namespaces] spec.hostPID" in (failure.text or "")
