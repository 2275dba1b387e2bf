"""allow-privilege-escalation: exactly false in every container; Windows pods exempt."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import RULES, Level
from tests.unit.rules.pss import (
    EPH_SC,
    INIT_SC,
    SC,
    SC1,
    Expected,
    assert_findings,
    ctr,
    pod,
    run,
    windows,
)

FALSE = {"allowPrivilegeEscalation": False}
TRUE = {"allowPrivilegeEscalation": True}
FIELD = "allowPrivilegeEscalation"

CASES = [
    pytest.param(pod(ctr(sc=FALSE), init=[ctr("init", sc=FALSE)]), [], id="false-everywhere"),
    pytest.param(
        pod(ctr()),
        [
            (
                f"{SC}.{FIELD}",
                "app",
                'container "app" must set securityContext.allowPrivilegeEscalation: false '
                "(default: true)",
            )
        ],
        id="unset-defaults-to-true",
    ),
    pytest.param(
        pod(ctr(sc=TRUE)),
        [
            (
                f"{SC}.{FIELD}",
                "app",
                "must not set securityContext.allowPrivilegeEscalation: true; set it to false",
            )
        ],
        id="true",
    ),
    pytest.param(
        pod(ctr(sc=FALSE), sc=FALSE),
        [],
        id="pod-level-key-is-not-a-field-but-harmless",
    ),
    pytest.param(
        pod(ctr(), sc=FALSE),
        [(f"{SC}.{FIELD}", "app", "must set")],
        id="pod-level-key-does-not-cover-containers",
    ),
    pytest.param(
        pod(
            ctr("a", sc=FALSE),
            ctr("b", sc=TRUE),
            init=[ctr("init")],
            ephemeral=[ctr("debug", sc=TRUE)],
        ),
        [
            (f"{INIT_SC}.{FIELD}", "init", 'container "init" must set'),
            (f"{SC1}.{FIELD}", "b", 'container "b" must not set'),
            (f"{EPH_SC}.{FIELD}", "debug", 'container "debug" must not set'),
        ],
        id="every-container-list",
    ),
    pytest.param(
        pod(ctr(sc={FIELD: "false"})),
        [(f"{SC}.{FIELD}", "app", 'allowPrivilegeEscalation: "false"')],
        id="string-false-is-not-false",
    ),
    pytest.param(
        pod(ctr(sc={FIELD: 0})), [(f"{SC}.{FIELD}", "app", ": 0")], id="zero-is-not-false"
    ),
    pytest.param(windows(pod(ctr())), [], id="windows-exempt"),
    pytest.param(
        {**pod(ctr()), "os": {"name": "linux"}},
        [(f"{SC}.{FIELD}", "app", "must set")],
        id="linux-os-not-exempt",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_allow_privilege_escalation(spec: dict[str, Any], expected: list[Expected]) -> None:
    assert_findings(run("allow-privilege-escalation", spec), expected)


def test_restricted_only() -> None:
    assert RULES.get("allow-privilege-escalation").level is Level.RESTRICTED
