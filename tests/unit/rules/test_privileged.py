"""privileged: no container runs privileged, in any of the three container lists."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import EPH_SC, INIT_SC, SC, SC1, Expected, assert_findings, ctr, pod, run

CASES = [
    pytest.param(pod(ctr()), [], id="unset"),
    pytest.param(pod(ctr(sc={"privileged": False})), [], id="false"),
    pytest.param(
        pod(ctr(sc={"privileged": True})),
        [(f"{SC}.privileged", "app", 'container "app" must not set securityContext.privileged')],
        id="container-true",
    ),
    pytest.param(
        pod(ctr(), init=[ctr("init", sc={"privileged": True})]),
        [(f"{INIT_SC}.privileged", "init", 'container "init"')],
        id="init-container-true",
    ),
    pytest.param(
        pod(ctr(), ephemeral=[ctr("debug", sc={"privileged": True})]),
        [(f"{EPH_SC}.privileged", "debug", 'container "debug"')],
        id="ephemeral-container-true",
    ),
    pytest.param(
        pod(
            ctr("a", sc={"privileged": True}),
            ctr("b", sc={"privileged": True}),
            init=[ctr("init", sc={"privileged": True})],
        ),
        [
            (f"{INIT_SC}.privileged", "init", "set it to false"),
            (f"{SC}.privileged", "a", "set it to false"),
            (f"{SC1}.privileged", "b", "set it to false"),
        ],
        id="every-offender-init-first",
    ),
    pytest.param(
        pod(ctr(sc={"privileged": "yes"})),
        [(f"{SC}.privileged", "app", 'privileged: "yes"')],
        id="malformed-value-fails-closed",
    ),
    pytest.param(pod(ctr(sc="privileged")), [], id="malformed-security-context-is-empty"),
    pytest.param({"containers": "nope"}, [], id="malformed-container-list"),
    pytest.param(
        pod(ctr(sc={"privileged": True}), sc={"privileged": True}),
        [(f"{SC}.privileged", "app", "privileged")],
        id="pod-level-key-is-not-a-field",
    ),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_privileged(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("privileged", spec, level=level), expected)


def test_unnamed_container_is_named_by_position() -> None:
    spec = {"containers": [{"image": "x", "securityContext": {"privileged": True}}]}
    [finding] = run("privileged", spec)
    assert finding.container == "containers[0]"
    assert finding.field == f"{SC}.privileged"
