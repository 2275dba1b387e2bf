"""proc-mount: Default only; baseline relaxes it in a user namespace, restricted never does."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import EPH_SC, INIT_SC, SC, Expected, assert_findings, ctr, pod, run

UNMASKED = {"procMount": "Unmasked"}

BOTH_LEVELS = [
    pytest.param(pod(ctr()), [], id="unset"),
    pytest.param(pod(ctr(sc={"procMount": "Default"})), [], id="default"),
    pytest.param(
        pod(ctr(sc=UNMASKED)),
        [
            (
                f"{SC}.procMount",
                "app",
                'container "app" must not set securityContext.procMount to "Unmasked"; remove it '
                "or set it to Default",
            )
        ],
        id="unmasked",
    ),
    pytest.param(
        pod(ctr(sc=UNMASKED), init=[ctr("init", sc=UNMASKED)], ephemeral=[ctr("d", sc=UNMASKED)]),
        [
            (f"{INIT_SC}.procMount", "init", 'container "init"'),
            (f"{SC}.procMount", "app", 'container "app"'),
            (f"{EPH_SC}.procMount", "d", 'container "d"'),
        ],
        id="every-container-list",
    ),
    pytest.param(
        pod(ctr(sc={"procMount": "default"})),
        [(f"{SC}.procMount", "app", '"default"')],
        id="case-matters",
    ),
    pytest.param(
        pod(ctr(sc=UNMASKED), hostUsers=True),
        [(f"{SC}.procMount", "app", "Unmasked")],
        id="host-users-true-is-no-user-namespace",
    ),
    pytest.param(
        pod(ctr(sc=UNMASKED), hostUsers="false"),
        [(f"{SC}.procMount", "app", "Unmasked")],
        id="malformed-host-users-is-no-user-namespace",
    ),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), BOTH_LEVELS)
def test_proc_mount(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("proc-mount", spec, level=level), expected)


def test_user_namespace_relaxes_baseline_only() -> None:
    spec = pod(ctr(sc=UNMASKED), hostUsers=False)
    assert run("proc-mount", spec, level=Level.BASELINE) == []
    assert_findings(
        run("proc-mount", spec, level=Level.RESTRICTED), [(f"{SC}.procMount", "app", "Unmasked")]
    )
