"""host-ports: no container binds a node port (any non-zero hostPort)."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import Expected, assert_findings, ctr, pod, run

PORTS = "spec.containers[0].ports"

CASES = [
    pytest.param(pod(ctr(ports=[{"containerPort": 8080}])), [], id="container-port-only"),
    pytest.param(pod(ctr(ports=[{"containerPort": 80, "hostPort": 0}])), [], id="host-port-zero"),
    pytest.param(
        pod(ctr(ports=[{"containerPort": 80, "hostPort": 80}])),
        [
            (
                f"{PORTS}[0].hostPort",
                "app",
                'container "app" must not use hostPort 80; remove hostPort',
            )
        ],
        id="host-port",
    ),
    pytest.param(
        pod(
            ctr(ports=[{"containerPort": 80, "hostPort": 80}, {"containerPort": 9, "hostPort": 9}])
        ),
        [(f"{PORTS}[0].hostPort", "app", "80"), (f"{PORTS}[1].hostPort", "app", "9")],
        id="every-port",
    ),
    pytest.param(
        pod(ctr(), init=[ctr("init", ports=[{"containerPort": 1, "hostPort": 1}])]),
        [("spec.initContainers[0].ports[0].hostPort", "init", 'container "init"')],
        id="init-container",
    ),
    pytest.param(
        pod(ctr(), ephemeral=[ctr("debug", ports=[{"containerPort": 1, "hostPort": 1}])]),
        [("spec.ephemeralContainers[0].ports[0].hostPort", "debug", 'container "debug"')],
        id="ephemeral-container",
    ),
    pytest.param(
        pod(ctr(ports=[{"hostPort": "8080"}])),
        [(f"{PORTS}[0].hostPort", "app", 'hostPort "8080"')],
        id="malformed-string-fails-closed",
    ),
    pytest.param(
        pod(ctr(ports=[{"hostPort": False}])),
        [(f"{PORTS}[0].hostPort", "app", "hostPort false")],
        id="boolean-is-not-zero",
    ),
    pytest.param(pod(ctr(ports=[{"hostPort": None}])), [], id="null"),
    pytest.param(pod(ctr(ports="80:80")), [], id="malformed-ports"),
    pytest.param(pod(ctr(ports=["80"])), [], id="malformed-port-entry"),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_host_ports(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("host-ports", spec, level=level), expected)
