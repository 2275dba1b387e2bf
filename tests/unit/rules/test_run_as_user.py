"""run-as-user: UID 0 is refused wherever it is set, unless the pod has a user namespace."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import RULES, Level
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
)

ROOT = {"runAsUser": 0}
FIELD = "runAsUser"

CASES = [
    pytest.param(pod(ctr()), [], id="unset"),
    pytest.param(pod(ctr(sc={"runAsUser": 1000}), sc={"runAsUser": 65534}), [], id="non-zero"),
    pytest.param(pod(ctr(sc={"runAsUser": 2**31 - 1})), [], id="largest-uid"),
    pytest.param(
        pod(ctr(), sc=ROOT),
        [
            (
                f"{POD_SC}.{FIELD}",
                None,
                "pod must not set securityContext.runAsUser: 0 (root); use a non-zero UID",
            )
        ],
        id="pod-root-reported-once-on-the-pod",
    ),
    pytest.param(
        pod(ctr(sc=ROOT), sc={"runAsUser": 1000}),
        [(f"{SC}.{FIELD}", "app", 'container "app" must not set securityContext.runAsUser: 0')],
        id="container-root-overrides-pod-non-zero",
    ),
    pytest.param(
        pod(ctr(sc={"runAsUser": 1000}), sc=ROOT),
        [(f"{POD_SC}.{FIELD}", None, "pod must not")],
        id="container-non-zero-does-not-excuse-pod-root",
    ),
    pytest.param(
        pod(ctr(sc=ROOT), init=[ctr("init", sc=ROOT)], ephemeral=[ctr("debug", sc=ROOT)], sc=ROOT),
        [
            (f"{POD_SC}.{FIELD}", None, "pod"),
            (f"{INIT_SC}.{FIELD}", "init", 'container "init"'),
            (f"{SC}.{FIELD}", "app", 'container "app"'),
            (f"{EPH_SC}.{FIELD}", "debug", 'container "debug"'),
        ],
        id="root-anywhere",
    ),
    pytest.param(
        pod(ctr(sc=ROOT), sc={"runAsNonRoot": True}),
        [(f"{SC}.{FIELD}", "app", "root")],
        id="run-as-non-root-does-not-excuse-root",
    ),
    pytest.param(
        pod(ctr(sc={"runAsUser": "0"})),
        [(f"{SC}.{FIELD}", "app", 'runAsUser must be a numeric UID, got "0"')],
        id="malformed-string",
    ),
    pytest.param(
        pod(ctr(sc={"runAsUser": False})),
        [(f"{SC}.{FIELD}", "app", "got false")],
        id="boolean-is-not-a-uid",
    ),
    pytest.param(
        pod(ctr(sc={"runAsUser": -1})), [(f"{SC}.{FIELD}", "app", "got -1")], id="negative"
    ),
    pytest.param(
        pod(ctr(sc={"runAsUser": 2**31})),
        [(f"{SC}.{FIELD}", "app", "got 2147483648")],
        id="too-big",
    ),
    pytest.param(pod(ctr(sc=ROOT), sc=ROOT, hostUsers=False), [], id="user-namespace"),
    pytest.param(
        pod(ctr(sc=ROOT), hostUsers=True), [(f"{SC}.{FIELD}", "app", "root")], id="host-users-true"
    ),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_run_as_user(spec: dict[str, Any], expected: list[Expected]) -> None:
    assert_findings(run("run-as-user", spec), expected)


def test_restricted_only() -> None:
    assert RULES.get("run-as-user").level is Level.RESTRICTED
