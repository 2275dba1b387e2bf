"""windows-host-process: no HostProcess pod or container."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import (
    EPH_SC,
    INIT_SC,
    POD_SC,
    SC,
    Expected,
    assert_findings,
    ctr,
    pod,
    run,
    windows,
)


def host_process(value: Any) -> dict[str, Any]:
    return {"windowsOptions": {"hostProcess": value}}


CASES = [
    pytest.param(windows(pod()), [], id="unset"),
    pytest.param(windows(pod(ctr(sc=host_process(False)), sc=host_process(False))), [], id="false"),
    pytest.param(
        windows(pod(sc={"windowsOptions": {"runAsUserName": "ContainerUser"}})),
        [],
        id="other-windows-options",
    ),
    pytest.param(
        windows(pod(sc=host_process(True))),
        [
            (
                f"{POD_SC}.windowsOptions.hostProcess",
                None,
                "pod must not set securityContext.windowsOptions.hostProcess: true; remove it or "
                "set it to false",
            )
        ],
        id="pod-true",
    ),
    pytest.param(
        windows(pod(ctr(sc=host_process(True)), sc=host_process(False))),
        [(f"{SC}.windowsOptions.hostProcess", "app", 'container "app"')],
        id="container-true-overrides-pod-false",
    ),
    pytest.param(
        windows(
            pod(
                ctr(),
                init=[ctr("init", sc=host_process(True))],
                ephemeral=[ctr("debug", sc=host_process(True))],
                sc=host_process(True),
            )
        ),
        [
            (f"{POD_SC}.windowsOptions.hostProcess", None, "pod must not"),
            (f"{INIT_SC}.windowsOptions.hostProcess", "init", 'container "init"'),
            (f"{EPH_SC}.windowsOptions.hostProcess", "debug", 'container "debug"'),
        ],
        id="every-offender",
    ),
    pytest.param(
        pod(ctr(sc=host_process(True))),
        [(f"{SC}.windowsOptions.hostProcess", "app", "hostProcess: true")],
        id="checked-without-os-name-too",
    ),
    pytest.param(
        windows(pod(sc=host_process("true"))),
        [(f"{POD_SC}.windowsOptions.hostProcess", None, 'hostProcess: "true"')],
        id="malformed-value-fails-closed",
    ),
    pytest.param(windows(pod(sc={"windowsOptions": True})), [], id="malformed-options-empty"),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_windows_host_process(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("windows-host-process", spec, level=level), expected)
