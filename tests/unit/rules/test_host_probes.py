"""host-probes: probe and lifecycle httpGet/tcpSocket handlers name no host."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import Expected, assert_findings, ctr, pod, run

APP = "spec.containers[0]"

CASES = [
    pytest.param(
        pod(ctr(livenessProbe={"httpGet": {"path": "/healthz", "port": 8080}})), [], id="no-host"
    ),
    pytest.param(
        pod(ctr(readinessProbe={"tcpSocket": {"port": 8080, "host": ""}})), [], id="empty-host"
    ),
    pytest.param(pod(ctr(livenessProbe={"grpc": {"port": 9090}})), [], id="grpc-has-no-host"),
    pytest.param(
        pod(ctr(lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}})), [], id="exec"
    ),
    pytest.param(
        pod(ctr(livenessProbe={"httpGet": {"host": "169.254.169.254", "port": 80}})),
        [
            (
                f"{APP}.livenessProbe.httpGet.host",
                "app",
                'container "app" must not set livenessProbe.httpGet.host: "169.254.169.254"; '
                "remove host so the kubelet targets the pod's own IP (set a Host header",
            )
        ],
        id="liveness-http-host",
    ),
    pytest.param(
        pod(ctr(readinessProbe={"tcpSocket": {"host": "10.0.0.1", "port": 22}})),
        [(f"{APP}.readinessProbe.tcpSocket.host", "app", "readinessProbe.tcpSocket.host")],
        id="readiness-tcp-host",
    ),
    pytest.param(
        pod(ctr(startupProbe={"httpGet": {"host": "db", "port": 1}})),
        [(f"{APP}.startupProbe.httpGet.host", "app", '"db"')],
        id="startup-http-host",
    ),
    pytest.param(
        pod(
            ctr(
                lifecycle={
                    "postStart": {"httpGet": {"host": "a", "port": 1}},
                    "preStop": {"tcpSocket": {"host": "b", "port": 2}},
                }
            )
        ),
        [
            (f"{APP}.lifecycle.postStart.httpGet.host", "app", "lifecycle.postStart.httpGet"),
            (f"{APP}.lifecycle.preStop.tcpSocket.host", "app", "lifecycle.preStop.tcpSocket"),
        ],
        id="lifecycle-handlers",
    ),
    pytest.param(
        pod(
            ctr(),
            init=[ctr("init", livenessProbe={"httpGet": {"host": "x", "port": 1}})],
            ephemeral=[ctr("debug", readinessProbe={"tcpSocket": {"host": "y", "port": 1}})],
        ),
        [
            ("spec.initContainers[0].livenessProbe.httpGet.host", "init", 'container "init"'),
            (
                "spec.ephemeralContainers[0].readinessProbe.tcpSocket.host",
                "debug",
                'container "debug"',
            ),
        ],
        id="init-and-ephemeral",
    ),
    pytest.param(
        pod(
            ctr(
                livenessProbe={
                    "httpGet": {"host": "a", "port": 1},
                    "tcpSocket": {"host": "b", "port": 1},
                }
            )
        ),
        [
            (f"{APP}.livenessProbe.httpGet.host", "app", '"a"'),
            (f"{APP}.livenessProbe.tcpSocket.host", "app", '"b"'),
        ],
        id="both-handlers-of-one-probe",
    ),
    pytest.param(
        pod(ctr(livenessProbe={"httpGet": {"host": 127001, "port": 1}})),
        [(f"{APP}.livenessProbe.httpGet.host", "app", "host: 127001")],
        id="malformed-host-fails-closed",
    ),
    pytest.param(pod(ctr(livenessProbe="httpGet", lifecycle=["preStop"])), [], id="malformed"),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_host_probes(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("host-probes", spec, level=level), expected)


def test_tcp_message_does_not_mention_http_headers() -> None:
    [finding] = run("host-probes", pod(ctr(livenessProbe={"tcpSocket": {"host": "h"}})))
    assert "httpHeaders" not in finding.message
