"""host-namespaces: hostNetwork, hostPID and hostIPC stay off."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import Expected, assert_findings, pod, run

CASES = [
    pytest.param(pod(), [], id="unset"),
    pytest.param(pod(hostNetwork=False, hostPID=False, hostIPC=False), [], id="all-false"),
    pytest.param(
        pod(hostNetwork=True),
        [("spec.hostNetwork", None, "pod must not set hostNetwork: true")],
        id="host-network",
    ),
    pytest.param(pod(hostPID=True), [("spec.hostPID", None, "process namespace")], id="host-pid"),
    pytest.param(pod(hostIPC=True), [("spec.hostIPC", None, "IPC namespace")], id="host-ipc"),
    pytest.param(
        pod(hostNetwork=True, hostPID=True, hostIPC=True),
        [
            ("spec.hostNetwork", None, "set it to false"),
            ("spec.hostPID", None, "set it to false"),
            ("spec.hostIPC", None, "set it to false"),
        ],
        id="every-offender-in-stable-order",
    ),
    pytest.param(
        pod(hostNetwork="true"),
        [("spec.hostNetwork", None, 'hostNetwork: "true"')],
        id="malformed-string-fails-closed",
    ),
    pytest.param(pod(hostNetwork=None), [], id="null-is-unset"),
    pytest.param(pod(hostUsers=True), [], id="host-users-is-not-checked"),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_host_namespaces(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("host-namespaces", spec, level=level), expected)


def test_paths_follow_the_workload_template() -> None:
    findings = run("host-namespaces", pod(hostPID=True), spec_path="spec.template.spec")
    assert [f.field for f in findings] == ["spec.template.spec.hostPID"]
