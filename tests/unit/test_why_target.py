"""``kubectl mamori why``'s command line: the object named, the pods' selector, the output, and
exit status 2 with a message for what cannot run (mamori/why/target.py, gather.py, command.py)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest

from mamori.why.explain import explain
from mamori.why.gather import label_selector
from mamori.why.render import to_dict, write_text
from mamori.why.target import TargetError, parse_target
from tests.unit.test_why_explain import NAMESPACE, by_env, deployment, policy


@pytest.mark.parametrize(
    ("words", "kinds", "name"),
    [
        pytest.param(["web"], ["Pod", "Deployment"], "web", id="bare-name-pod-then-deployment"),
        pytest.param(["deploy/web"], ["Deployment"], "web", id="short-name"),
        pytest.param(["deployments/web"], ["Deployment"], "web", id="plural"),
        pytest.param(["deployment.apps/web"], ["Deployment"], "web", id="with-group"),
        pytest.param(["statefulset/db"], ["StatefulSet"], "db", id="statefulset"),
        pytest.param(["sts", "db"], ["StatefulSet"], "db", id="kind-then-name"),
        pytest.param(["pod/x"], ["Pod"], "x", id="pod"),
        pytest.param(["PO/x"], ["Pod"], "x", id="kind-any-case"),
        pytest.param(["cj/nightly"], ["CronJob"], "nightly", id="cronjob"),
    ],
)
def test_objects_are_named_as_kubectl_names_them(
    words: list[str], kinds: list[str], name: str
) -> None:
    target = parse_target(words)
    assert ([kind.name for kind in target.kinds], target.name) == (kinds, name)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        pytest.param(["configmap/x"], "'configmap' is not a kind mamori judges", id="kind"),
        pytest.param(["deploy/"], "'' is not an object name", id="empty-name"),
        pytest.param(["deploy/a/b"], "'a/b' is not an object name", id="slash-in-name"),
        pytest.param(["deploy/Web"], "'Web' is not an object name", id="upper-case"),
        pytest.param(["a", "b", "c"], "name one object", id="three-words"),
    ],
)
def test_what_names_no_object_is_refused(words: list[str], message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_target(words)


def test_the_rest_path_of_each_group() -> None:
    assert parse_target(["pod/x"]).kinds[0].path("ns", "x") == "/api/v1/namespaces/ns/pods/x"
    assert parse_target(["job/x"]).kinds[0].path("ns", "x") == "/apis/batch/v1/namespaces/ns/jobs/x"


@pytest.mark.parametrize(
    ("selector", "query"),
    [
        pytest.param({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", id="labels-sorted"),
        pytest.param(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["a", "b"]},
                    {"key": "x", "operator": "NotIn", "values": ["c"]},
                    {"key": "y", "operator": "Exists"},
                    {"key": "z", "operator": "DoesNotExist"},
                ],
            },
            "app=web,tier in (a,b),x notin (c),y,!z",
            id="expressions",
        ),
        pytest.param({}, None, id="empty"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_a_workloads_selector_becomes_the_pods_query(selector: Any, query: str | None) -> None:
    assert label_selector(selector) == query


def test_text_names_each_policy_its_reason_and_each_violation_with_its_fix() -> None:
    explanation = explain(
        deployment(host_network=True),
        namespace=NAMESPACE,
        namespace_labels={"env": "dev"},
        policy_objects=[policy("enforce-dev", namespaceSelector=by_env("dev")),
                        policy("prod", enforcement="Warn", namespaceSelector=by_env("prod"))],
    )  # fmt: skip
    stream = io.StringIO()
    write_text(explanation, stream)
    text = stream.getvalue()
    assert text.startswith(f"Deployment web in namespace {NAMESPACE}: DENIED\n")
    assert "  enforce-dev (Enforce): spec.namespaceSelector matches (env=dev)\n" in text
    assert "    ✗ [host-namespaces] spec.template.spec.hostNetwork\n" in text
    assert (
        "        fix: no hostNetwork, hostPID or hostIPC (docs/rules.md#host-namespaces)\n" in text
    )
    assert (
        "Policies that do not (1):\n  prod (Warn): spec.namespaceSelector does not match: "
        "env=prod, but the namespace has env=dev\n"
    ) in text
    assert text.endswith("(violations: 1 Enforce, 0 Warn, 0 Audit)\n")


def test_json_carries_the_same_facts() -> None:
    explanation = explain(
        deployment(host_network=True),
        namespace=NAMESPACE,
        namespace_labels=None,
        policy_objects=[policy("w", enforcement="Warn")],
    )
    document = json.loads(json.dumps(to_dict(explanation)))
    assert document["object"] == {"kind": "Deployment", "name": "web", "namespace": NAMESPACE}
    assert (document["allowed"], document["namespaceLabels"]) == (True, None)
    [entry] = document["policies"]
    assert (entry["name"], entry["selected"], entry["enforcement"]) == ("w", True, "Warn")
    [violation] = entry["violations"]
    assert violation["rule"] == "host-namespaces"
    assert violation["field"] == "spec.template.spec.hostNetwork"
    assert violation["fix"].endswith("(docs/rules.md#host-namespaces)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["why", "configmap/x"], "is not a kind mamori judges", id="kind"),
        pytest.param(["why", "web", "-n", "Bad_NS"], "is not a namespace name", id="namespace"),
        pytest.param(
            ["why", "web", "--request-timeout", "soon"], "--request-timeout", id="timeout"
        ),
        pytest.param(["why", "web", "--request-timeout", "0"], "longer than 0s", id="zero"),
        pytest.param(
            ["why", "web", "--kubeconfig", "/nonexistent/kubeconfig"],
            "cannot use /nonexistent/kubeconfig",
            id="kubeconfig-missing",
        ),
        pytest.param(["why"], "OBJECT", id="no-object"),
    ],
)
@pytest.mark.parametrize("entry", ["mamori.why.command", "mamori.cli"])  # kubectl-mamori, mamori
def test_what_cannot_run_exits_2_with_a_message(entry: str, argv: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", entry, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout
    assert message in done.stderr
    assert done.stdout == ""
