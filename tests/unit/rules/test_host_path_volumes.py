"""host-path-volumes: no volume mounts a node path."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import Expected, assert_findings, pod, run

CASES = [
    pytest.param(pod(), [], id="no-volumes"),
    pytest.param(pod(volumes=[{"name": "tmp", "emptyDir": {}}]), [], id="empty-dir"),
    pytest.param(
        pod(volumes=[{"name": "sock", "hostPath": {"path": "/var/run/containerd.sock"}}]),
        [
            (
                "spec.volumes[0].hostPath",
                None,
                'volume "sock" must not use hostPath (node path "/var/run/containerd.sock"); '
                "use a persistentVolumeClaim",
            )
        ],
        id="host-path",
    ),
    pytest.param(
        pod(
            volumes=[
                {"name": "a", "hostPath": {"path": "/"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "b", "hostPath": {"path": "/etc"}},
            ]
        ),
        [
            ("spec.volumes[0].hostPath", None, 'volume "a"'),
            ("spec.volumes[2].hostPath", None, 'volume "b"'),
        ],
        id="every-offender",
    ),
    pytest.param(
        pod(volumes=[{"hostPath": {}}]),
        [("spec.volumes[0].hostPath", None, 'volume "volumes[0]" must not use hostPath;')],
        id="unnamed-and-no-path",
    ),
    pytest.param(
        pod(volumes=[{"name": "x", "hostPath": "/etc"}]),
        [("spec.volumes[0].hostPath", None, 'volume "x"')],
        id="malformed-host-path-still-fails",
    ),
    pytest.param(pod(volumes=[{"name": "x", "hostPath": None}]), [], id="null-host-path"),
    pytest.param(pod(volumes="hostPath"), [], id="malformed-volumes-left-to-restricted"),
    pytest.param(pod(volumes=["hostPath"]), [], id="malformed-volume-left-to-restricted"),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_host_path_volumes(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("host-path-volumes", spec, level=level), expected)
