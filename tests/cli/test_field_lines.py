"""Each finding of `mamori check --output sarif|junit` points at the line of its field.

One manifest per rule family; the expected line is found by its text (``anchor``), so a case
reads as the file it is. A field that is absent is placed at its deepest ancestor that exists.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from mamori.check import Result, judge
from mamori.manifests import Document
from mamori.policy import default_policy
from mamori.report.locate import DocumentText, FieldLocator, field_steps

POD_HEAD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
"""
SAFE_CONTAINER = """\
  - name: app
    image: nginx:1.25
    securityContext:
      runAsNonRoot: true
      runAsUser: 10001
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
      seccompProfile: {type: RuntimeDefault}
"""


def pod(spec: str) -> str:
    return POD_HEAD + "spec:\n" + spec


CASES = [
    pytest.param(
        pod("  containers:\n" + SAFE_CONTAINER.replace("runAsNonRoot: true", "runAsNonRoot: no")),
        "run-as-non-root",
        "spec.containers[0].securityContext.runAsNonRoot",
        "runAsNonRoot: no",
        id="run-as-non-root-container-false",
    ),
    pytest.param(
        pod("  securityContext:\n    runAsUser: 0\n  containers:\n" + SAFE_CONTAINER),
        "run-as-user",
        "spec.securityContext.runAsUser",
        "runAsUser: 0",
        id="run-as-user-pod-level",
    ),
    pytest.param(
        pod("  containers:\n" + SAFE_CONTAINER + "      privileged: true\n"),
        "privileged",
        "spec.containers[0].securityContext.privileged",
        "privileged: true",
        id="privileged",
    ),
    pytest.param(
        pod("  hostPID: true\n  containers:\n" + SAFE_CONTAINER),
        "host-namespaces",
        "spec.hostPID",
        "hostPID",
        id="host-namespaces",
    ),
    pytest.param(
        pod(
            "  containers:\n"
            + SAFE_CONTAINER
            + "    ports:\n    - containerPort: 80\n    - containerPort: 81\n      hostPort: 81\n"
        ),
        "host-ports",
        "spec.containers[0].ports[1].hostPort",
        "hostPort: 81",
        id="host-ports-second-port",
    ),
    pytest.param(
        pod(
            "  containers:\n"
            + SAFE_CONTAINER
            + "  volumes:\n  - name: tmp\n    emptyDir: {}\n"
            + "  - name: root\n    hostPath:\n      path: /\n"
        ),
        "host-path-volumes",
        "spec.volumes[1].hostPath",
        "hostPath:",
        id="host-path-second-volume",
    ),
    pytest.param(
        pod(
            "  securityContext:\n    sysctls:\n"
            "    - name: kernel.shm_rmid_forced\n      value: '1'\n"
            "    - name: net.core.somaxconn\n      value: '1024'\n"
            "  containers:\n" + SAFE_CONTAINER
        ),
        "sysctls",
        "spec.securityContext.sysctls[1].name",
        "net.core.somaxconn",
        id="sysctls-second-entry",
    ),
    pytest.param(
        POD_HEAD
        + "  annotations:\n    team: web\n"
        + "    container.apparmor.security.beta.kubernetes.io/app: unconfined\n"
        + "spec:\n  containers:\n"
        + SAFE_CONTAINER,
        "apparmor-profile",
        "metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]",
        "apparmor.security",
        id="apparmor-annotation-key-with-dots",
    ),
    pytest.param(
        pod("  containers:\n" + SAFE_CONTAINER.replace("nginx:1.25", "'nginx:'")),
        "image-reference",
        "spec.containers[0].image",
        "image:",
        id="image-reference",
    ),
    pytest.param(
        pod(
            "  containers:\n"
            + SAFE_CONTAINER.replace("      seccompProfile: {type: RuntimeDefault}\n", "")
        ),
        "seccomp-profile",
        "spec.containers[0].securityContext.seccompProfile.type",
        "    securityContext:",
        id="seccomp-absent-points-at-securityContext",
    ),
    pytest.param(
        pod("  containers:\n  - name: app\n    image: nginx:1.25\n"),
        "run-as-non-root",
        "spec.containers[0].securityContext.runAsNonRoot",
        "- name: app",
        id="no-securityContext-points-at-the-container",
    ),
    pytest.param(
        """\
# a Deployment: the pod spec is two levels down
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: app
        image: nginx:1.25
        securityContext:
          allowPrivilegeEscalation: true
""",
        "allow-privilege-escalation",
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
        "allowPrivilegeEscalation: true",
        id="deployment-template",
    ),
    pytest.param(
        """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          initContainers:
          - name: init
            image: busybox:1.37
            securityContext:
              capabilities:
                add: [SYS_ADMIN]
          containers:
          - name: app
            image: busybox:1.37
""",
        "capabilities",
        "spec.jobTemplate.spec.template.spec.initContainers[0].securityContext.capabilities.add",
        "add: [SYS_ADMIN]",
        id="cronjob-init-container",
    ),
    pytest.param(
        """\
apiVersion: v1
kind: Service
metadata:
  name: before
---
# the pod is the second document
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  hostNetwork: true
  containers:
"""
        + SAFE_CONTAINER,
        "host-namespaces",
        "spec.hostNetwork",
        "hostNetwork: true",
        id="second-document",
    ),
    pytest.param(
        """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: first}
  spec:
    containers:
    - name: app
      image: nginx:1.25
      securityContext: &safe
        runAsNonRoot: true
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
        seccompProfile: {type: RuntimeDefault}
- apiVersion: v1
  kind: Pod
  metadata: {name: second}
  spec:
    hostIPC: true
    containers:
    - name: app
      image: nginx:1.25
      securityContext: *safe
""",
        "host-namespaces",
        "spec.hostIPC",
        "hostIPC: true",
        id="list-item-with-anchors",
    ),
    pytest.param(
        """\
{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "web"},
  "spec": {
    "containers": [
      {
        "name": "app",
        "image": "nginx:1.25",
        "securityContext": {
          "runAsNonRoot": true,
          "runAsUser": 0
        }
      }
    ]
  }
}
""",
        "run-as-user",
        "spec.containers[0].securityContext.runAsUser",
        '"runAsUser": 0',
        id="json",
    ),
    pytest.param(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}}\n'
        "{\n"
        '  "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},\n'
        '  "spec": {\n'
        '    "hostPID": true,\n'
        '    "containers": [{"name": "app", "image": "nginx:1.25"}]\n'
        "  }\n"
        "}\n",
        "host-namespaces",
        "spec.hostPID",
        '"hostPID": true',
        id="json-stream-second-object",
    ),
]


def expected_line(text: str, anchor: str) -> int:
    [line] = [n for n, content in enumerate(text.splitlines(), start=1) if anchor in content]
    return line


def located(path: Path) -> dict[tuple[str, str], int]:
    """(rule, field) → line, for every finding of every object in ``path``."""
    lines: dict[tuple[str, str], int] = {}
    for outcome in judge([str(path)], [default_policy()], locate=True):
        if isinstance(outcome, Result):
            findings = (*outcome.decision.violations, *outcome.decision.advice)
            assert len(outcome.lines) == len(findings)
            for finding, line in zip(findings, outcome.lines, strict=True):
                lines[(finding.rule, finding.field)] = line
    return lines


@pytest.mark.parametrize(("text", "rule", "field", "anchor"), CASES)
def test_a_finding_points_at_its_field(
    tmp_path: Path, text: str, rule: str, field: str, anchor: str
) -> None:
    path = tmp_path / ("pod.json" if text.startswith("{") else "pod.yaml")
    path.write_text(text)
    assert located(path)[(rule, field)] == expected_line(text, anchor)


def test_standard_input_is_located_too(monkeypatch: pytest.MonkeyPatch) -> None:
    text = CASES[3].values[0]
    assert isinstance(text, str)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    [result] = [o for o in judge(["-"], [default_policy()], locate=True) if isinstance(o, Result)]
    assert result.document.source == "<stdin>"
    [position] = [n for n, v in enumerate(result.decision.violations) if v.field == "spec.hostPID"]
    assert result.lines[position] == expected_line(text, "hostPID")


def test_allowed_objects_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: DocumentText, line: int) -> str | None:
        raise AssertionError("an allowed object without findings was read again")

    monkeypatch.setattr(DocumentText, "text_from", refuse)
    path = tmp_path / "pod.yaml"
    path.write_text(pod("  containers:\n" + SAFE_CONTAINER))
    [result] = list(judge([str(path)], [default_policy()], locate=True))
    assert isinstance(result, Result)
    assert result.decision.allowed and not result.decision.violations
    assert result.lines == ()


def test_a_document_that_cannot_be_read_again_keeps_its_first_line(tmp_path: Path) -> None:
    locator = FieldLocator(str(tmp_path / "gone.yaml"))
    document = Document("gone.yaml", 0, 7, {})
    assert locator.lines(document, ["spec.hostPID", "spec"]) == (7, 7)


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        pytest.param("spec.hostPID", ["spec", "hostPID"], id="plain"),
        pytest.param(
            "spec.containers[0].ports[12].hostPort",
            ["spec", "containers", 0, "ports", 12, "hostPort"],
            id="indexes",
        ),
        pytest.param(
            "metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]",
            ["metadata", "annotations", "container.apparmor.security.beta.kubernetes.io/app"],
            id="key-with-dots",
        ),
        pytest.param("spec.volumes[0]", ["spec", "volumes", 0], id="ends-with-index"),
    ],
)
def test_field_paths_are_read_as_rules_write_them(path: str, steps: list[object]) -> None:
    assert field_steps(path) == steps
