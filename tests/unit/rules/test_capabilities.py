"""capabilities: baseline limits what is added; restricted also demands drop ALL."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import (
    EPH_SC,
    INIT_SC,
    SC,
    Expected,
    assert_findings,
    ctr,
    pod,
    run,
    windows,
)

DROP_ALL = {"drop": ["ALL"]}


def caps(**capabilities: Any) -> dict[str, Any]:
    return {"capabilities": capabilities}


BASELINE = [
    pytest.param(pod(ctr()), [], id="unset"),
    pytest.param(pod(ctr(sc=caps(add=[]))), [], id="empty-add"),
    pytest.param(
        pod(ctr(sc=caps(add=["CHOWN", "NET_BIND_SERVICE", "SYS_CHROOT"]))), [], id="defaults"
    ),
    pytest.param(
        pod(ctr(sc=caps(add=["SYS_ADMIN", "NET_RAW", "CHOWN"]))),
        [
            (
                f"{SC}.capabilities.add",
                "app",
                'container "app" must not add "NET_RAW", "SYS_ADMIN" in '
                "securityContext.capabilities.add; remove them (the baseline level allows",
            )
        ],
        id="net-raw-and-sys-admin",
    ),
    pytest.param(
        pod(ctr(sc=caps(add=["CAP_SYS_ADMIN", "chown"]))),
        [(f"{SC}.capabilities.add", "app", '"CAP_SYS_ADMIN", "chown"')],
        id="names-compare-exactly",
    ),
    pytest.param(
        pod(ctr(), init=[ctr("init", sc=caps(add=["NET_ADMIN"]))]),
        [(f"{INIT_SC}.capabilities.add", "init", '"NET_ADMIN"')],
        id="init-container",
    ),
    pytest.param(
        pod(ctr(), ephemeral=[ctr("debug", sc=caps(add=["SYS_PTRACE"]))]),
        [(f"{EPH_SC}.capabilities.add", "debug", '"SYS_PTRACE"')],
        id="ephemeral-container",
    ),
    pytest.param(
        pod(ctr(sc=caps(add="SYS_ADMIN"))),
        [(f"{SC}.capabilities.add", "app", "must be a list")],
        id="malformed-add-string",
    ),
    pytest.param(
        pod(ctr(sc=caps(add=[7]))),
        [(f"{SC}.capabilities.add", "app", '"7"')],
        id="malformed-add-item",
    ),
    pytest.param(pod(ctr(sc={"capabilities": "ALL"})), [], id="malformed-capabilities-at-baseline"),
    pytest.param(pod(ctr(sc=caps(drop=[]))), [], id="baseline-does-not-demand-drop"),
]

RESTRICTED = [
    pytest.param(pod(ctr(sc=caps(drop=["ALL"]))), [], id="drop-all"),
    pytest.param(pod(ctr(sc=caps(drop=["NET_RAW", "ALL"]))), [], id="drop-all-among-others"),
    pytest.param(
        pod(ctr(sc=caps(drop=["ALL"], add=["NET_BIND_SERVICE"]))), [], id="add-net-bind-service"
    ),
    pytest.param(
        pod(ctr()),
        [(f"{SC}.capabilities.drop", "app", 'set securityContext.capabilities.drop: ["ALL"]')],
        id="no-security-context",
    ),
    pytest.param(
        pod(ctr(sc=caps(drop=["NET_RAW"]))),
        [(f"{SC}.capabilities.drop", "app", "must drop all capabilities")],
        id="drop-without-all",
    ),
    pytest.param(
        pod(ctr(sc=caps(drop=["all"]))),
        [(f"{SC}.capabilities.drop", "app", "must drop all")],
        id="lower-case-all-does-not-count",
    ),
    pytest.param(
        pod(ctr(sc=caps(drop="ALL"))),
        [(f"{SC}.capabilities.drop", "app", "must drop all")],
        id="malformed-drop-string",
    ),
    pytest.param(
        pod(ctr(sc=caps(drop=["ALL"], add=["CHOWN"]))),
        [
            (
                f"{SC}.capabilities.add",
                "app",
                'must not add "CHOWN" in securityContext.capabilities.add; remove it (the '
                "restricted level allows adding only NET_BIND_SERVICE)",
            )
        ],
        id="baseline-default-is-not-enough",
    ),
    pytest.param(
        pod(ctr(sc=caps(add=["SYS_ADMIN"]))),
        [
            (f"{SC}.capabilities.add", "app", '"SYS_ADMIN"'),
            (f"{SC}.capabilities.drop", "app", "must drop all"),
        ],
        id="both-problems-of-one-container",
    ),
    pytest.param(
        pod(ctr(sc=caps(drop=["ALL"])), init=[ctr("init")], ephemeral=[ctr("debug")]),
        [
            (f"{INIT_SC}.capabilities.drop", "init", 'container "init"'),
            (f"{EPH_SC}.capabilities.drop", "debug", 'container "debug"'),
        ],
        id="init-and-ephemeral-must-drop-too",
    ),
    pytest.param(windows(pod(ctr())), [], id="windows-exempt-from-drop"),
    pytest.param(windows(pod(ctr(sc=caps(add=["CHOWN"])))), [], id="windows-keeps-baseline-list"),
    pytest.param(
        windows(pod(ctr(sc=caps(add=["SYS_ADMIN"])))),
        [(f"{SC}.capabilities.add", "app", "baseline level allows")],
        id="windows-still-baseline-checked",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), BASELINE)
def test_baseline(spec: dict[str, Any], expected: list[Expected]) -> None:
    assert_findings(run("capabilities", spec, level=Level.BASELINE), expected)


@pytest.mark.parametrize(("spec", "expected"), RESTRICTED)
def test_restricted(spec: dict[str, Any], expected: list[Expected]) -> None:
    assert_findings(run("capabilities", spec, level=Level.RESTRICTED), expected)


def test_baseline_violation_is_reported_once_at_restricted() -> None:
    findings = run("capabilities", pod(ctr(sc=caps(drop=["ALL"], add=["SYS_ADMIN"]))))
    assert [f.field for f in findings] == [f"{SC}.capabilities.add"]


def test_registered_at_baseline() -> None:
    from mamori.rules import RULES

    assert RULES.get("capabilities").level is Level.BASELINE
