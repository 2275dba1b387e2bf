"""run-as-non-root: pod/container inheritance as in pod-security-admission, plus the advisory."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import RULES, Level
from tests.unit.rules.pss import (
    EPH_SC,
    INIT_SC,
    POD_SC,
    SC,
    SC1,
    Expected,
    advice,
    assert_findings,
    ctr,
    pod,
    run,
    windows,
)

TRUE = {"runAsNonRoot": True}
FALSE = {"runAsNonRoot": False}
FIELD = "runAsNonRoot"
MUST_SET = "must set securityContext.runAsNonRoot: true (on the container, or once on the pod)"
UID = {"runAsUser": 1000}

CASES = [
    pytest.param(pod(ctr(), sc={**TRUE, **UID}), [], id="pod-true"),
    pytest.param(pod(ctr(sc={**TRUE, **UID})), [], id="container-true"),
    pytest.param(
        pod(ctr("a", sc=TRUE), ctr("b"), sc=UID),
        [(f"{SC1}.{FIELD}", "b", f'container "b" {MUST_SET}')],
        id="one-container-left-out",
    ),
    pytest.param(
        pod(ctr(sc=FALSE), sc={**TRUE, **UID}),
        [
            (
                f"{SC}.{FIELD}",
                "app",
                'container "app" must not set securityContext.runAsNonRoot: false; set it to true',
            )
        ],
        id="container-false-overrides-pod-true",
    ),
    pytest.param(
        pod(ctr(), sc={**FALSE, **UID}),
        [(f"{POD_SC}.{FIELD}", None, "pod must not set securityContext.runAsNonRoot: false")],
        id="pod-false-reported-once-on-the-pod",
    ),
    pytest.param(
        pod(ctr(sc=TRUE), sc={**FALSE, **UID}),
        [(f"{POD_SC}.{FIELD}", None, "pod must not set")],
        id="container-true-does-not-excuse-pod-false",
    ),
    pytest.param(
        pod(ctr(), init=[ctr("init")], ephemeral=[ctr("debug")], sc=UID),
        [
            (f"{INIT_SC}.{FIELD}", "init", f'container "init" {MUST_SET}'),
            (f"{SC}.{FIELD}", "app", f'container "app" {MUST_SET}'),
            (f"{EPH_SC}.{FIELD}", "debug", f'container "debug" {MUST_SET}'),
        ],
        id="unset-everywhere-every-container-list",
    ),
    pytest.param(
        pod(ctr(sc=UID)),
        [(f"{SC}.{FIELD}", "app", MUST_SET)],
        id="run-as-user-alone-is-not-enough",
    ),
    pytest.param(
        pod(ctr(), sc={"runAsNonRoot": "true", **UID}),
        [(f"{POD_SC}.{FIELD}", None, 'runAsNonRoot: "true"')],
        id="malformed-pod-value",
    ),
    pytest.param(
        pod(ctr(sc={"runAsNonRoot": 1}), sc=UID),
        [(f"{SC}.{FIELD}", "app", "runAsNonRoot: 1")],
        id="malformed-container-value",
    ),
    pytest.param(pod(ctr(sc=FALSE), sc={"runAsUser": 0}, hostUsers=False), [], id="user-namespace"),
    pytest.param(
        pod(ctr(), hostUsers=True),
        [(f"{SC}.{FIELD}", "app", MUST_SET)],
        id="host-users-true-is-no-user-namespace",
    ),
    pytest.param(
        windows(pod(ctr())), [(f"{SC}.{FIELD}", "app", MUST_SET)], id="windows-not-exempt"
    ),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_run_as_non_root(spec: dict[str, Any], expected: list[Expected]) -> None:
    assert_findings(run("run-as-non-root", spec), expected)


ADVICE = [
    pytest.param(pod(ctr(), sc={**TRUE, **UID}), [], id="pod-uid"),
    pytest.param(pod(ctr(sc=UID), sc=TRUE), [], id="container-uid"),
    pytest.param(pod(ctr(), sc=TRUE), [(f"{SC}.runAsUser", "app")], id="no-uid-anywhere"),
    pytest.param(
        pod(ctr("a", sc=UID), ctr("b"), init=[ctr("init")], sc=TRUE),
        [(f"{INIT_SC}.runAsUser", "init"), (f"{SC1}.runAsUser", "b")],
        id="per-container-without-uid",
    ),
    pytest.param(
        pod(ctr(sc={"runAsUser": "1000"}), sc=TRUE),
        [(f"{SC}.runAsUser", "app")],
        id="string-uid-is-not-numeric",
    ),
    pytest.param(
        pod(ctr(sc={"runAsUser": None}), sc={**TRUE, **UID}), [], id="null-container-uid-inherits"
    ),
    pytest.param(pod(ctr(sc=FALSE), sc=TRUE), [], id="no-advice-for-a-violation"),
    pytest.param(windows(pod(ctr(), sc=TRUE)), [], id="windows-cannot-set-uid"),
]


@pytest.mark.parametrize(("spec", "expected"), ADVICE)
def test_advisory_without_numeric_uid(
    spec: dict[str, Any], expected: list[tuple[str, str | None]]
) -> None:
    findings = run("run-as-non-root", spec)
    assert advice(findings) == expected


def test_advisory_allows_and_tells_how() -> None:
    [finding] = run("run-as-non-root", pod(ctr(), sc=TRUE))
    assert finding.advisory
    assert finding.message.startswith(
        'container "app" sets runAsNonRoot: true but no numeric runAsUser: its image must '
        "declare a numeric non-root USER"
    )
    assert "kubelet refuses to start it" in finding.message


def test_restricted_only() -> None:
    assert RULES.get("run-as-non-root").level is Level.RESTRICTED
