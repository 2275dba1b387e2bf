"""seccomp-profile: baseline forbids Unconfined; restricted demands a profile per container."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from tests.unit.rules.pss import (
    EPH_SC,
    INIT_SC,
    POD_SC,
    SC,
    SC1,
    Expected,
    assert_findings,
    ctr,
    pod,
    run,
    windows,
)

POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def seccomp(kind: Any) -> dict[str, Any]:
    return {"seccompProfile": {"type": kind}}


RUNTIME_DEFAULT = seccomp("RuntimeDefault")
UNCONFINED = seccomp("Unconfined")
MISSING = "has no seccomp profile: set securityContext.seccompProfile.type: RuntimeDefault"

BOTH_LEVELS = [
    pytest.param(pod(sc=RUNTIME_DEFAULT), [], id="pod-runtime-default"),
    pytest.param(
        pod(sc={"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}),
        [],
        id="pod-localhost",
    ),
    pytest.param(
        pod(sc=UNCONFINED),
        [
            (
                f"{POD_SC}.seccompProfile.type",
                None,
                'pod must not set securityContext.seccompProfile.type to "Unconfined"; set '
                "securityContext.seccompProfile.type: RuntimeDefault (or Localhost)",
            )
        ],
        id="pod-unconfined",
    ),
    pytest.param(
        pod(ctr(sc=UNCONFINED), sc=RUNTIME_DEFAULT),
        [(f"{SC}.seccompProfile.type", "app", 'container "app" must not set')],
        id="container-unconfined-overrides-pod-runtime-default",
    ),
    pytest.param(
        pod(
            ctr(sc=RUNTIME_DEFAULT),
            init=[ctr("init", sc=UNCONFINED)],
            ephemeral=[ctr("debug", sc=UNCONFINED)],
        ),
        [
            (f"{INIT_SC}.seccompProfile.type", "init", 'container "init"'),
            (f"{EPH_SC}.seccompProfile.type", "debug", 'container "debug"'),
        ],
        id="init-and-ephemeral",
    ),
    pytest.param(
        pod(sc={"seccompProfile": {}}),
        [(f"{POD_SC}.seccompProfile.type", None, "to null")],
        id="profile-without-type",
    ),
    pytest.param(
        pod(ctr(sc={"seccompProfile": "RuntimeDefault"})),
        [(f"{SC}.seccompProfile", "app", "must be an object")],
        id="malformed-profile",
    ),
    pytest.param(
        pod(sc=UNCONFINED, ephemeral=[ctr("d")]),
        [(f"{POD_SC}.seccompProfile.type", None, "pod")],
        id="unconfined-pod-with-ephemeral",
    ),
]

BASELINE_ONLY = [
    pytest.param(pod(ctr(), init=[ctr("init")]), [], id="unset-is-fine-at-baseline"),
    pytest.param(pod(sc="RuntimeDefault"), [], id="malformed-security-context-is-empty"),
]

RESTRICTED = [
    pytest.param(pod(ctr(), init=[ctr("init")], sc=RUNTIME_DEFAULT), [], id="pod-covers-all"),
    pytest.param(
        pod(ctr(sc=RUNTIME_DEFAULT), init=[ctr("init", sc=seccomp("Localhost"))]),
        [],
        id="every-container-sets-its-own",
    ),
    pytest.param(
        pod(ctr(), init=[ctr("init")], ephemeral=[ctr("debug")]),
        [
            (
                f"{INIT_SC}.seccompProfile.type",
                "init",
                f'container "init" {MISSING} (or Localhost) on the pod or container "init"',
            ),
            (
                f"{SC}.seccompProfile.type",
                "app",
                "set securityContext.seccompProfile.type: RuntimeDefault (or Localhost) on the "
                'pod or container "app"',
            ),
            (f"{EPH_SC}.seccompProfile.type", "debug", 'on the pod or container "debug"'),
        ],
        id="unset-everywhere-every-container",
    ),
    pytest.param(
        pod(ctr("a", sc=RUNTIME_DEFAULT), ctr("b")),
        [(f"{SC1}.seccompProfile.type", "b", f'container "b" {MISSING}')],
        id="one-container-left-out",
    ),
    pytest.param(
        pod(ctr(), sc=UNCONFINED),
        [(f"{POD_SC}.seccompProfile.type", None, "pod must not")],
        id="bad-pod-reported-once-on-the-pod",
    ),
    pytest.param(
        pod(ctr(sc=RUNTIME_DEFAULT), sc=UNCONFINED),
        [(f"{POD_SC}.seccompProfile.type", None, "pod must not")],
        id="container-value-does-not-excuse-pod",
    ),
    pytest.param(
        pod(sc="RuntimeDefault"),
        [(f"{SC}.seccompProfile.type", "app", MISSING)],
        id="malformed-security-context-is-no-profile",
    ),
    pytest.param(
        pod(ctr(sc={"seccompProfile": None})),
        [(f"{SC}.seccompProfile.type", "app", MISSING)],
        id="null-profile-is-unset",
    ),
    pytest.param(windows(pod(ctr())), [], id="windows-exempt"),
    pytest.param(
        windows(pod(ctr(sc=UNCONFINED))),
        [(f"{SC}.seccompProfile.type", "app", '"Unconfined"')],
        id="windows-keeps-baseline-check",
    ),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), BOTH_LEVELS)
def test_both_levels(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("seccomp-profile", spec, level=level), expected)


@pytest.mark.parametrize(("spec", "expected"), BASELINE_ONLY)
def test_baseline(spec: dict[str, Any], expected: list[Expected]) -> None:
    assert_findings(run("seccomp-profile", spec, level=Level.BASELINE), expected)


@pytest.mark.parametrize(("spec", "expected"), RESTRICTED)
def test_restricted(spec: dict[str, Any], expected: list[Expected]) -> None:
    assert_findings(run("seccomp-profile", spec, level=Level.RESTRICTED), expected)


@pytest.mark.parametrize(
    ("annotations", "note"),
    [
        pytest.param(
            {POD_ANNOTATION: "runtime/default"},
            f"(the annotation {POD_ANNOTATION} is ignored since Kubernetes 1.27)",
            id="pod-annotation",
        ),
        pytest.param(
            {CONTAINER_ANNOTATION + "app": "runtime/default"},
            f"(the annotation {CONTAINER_ANNOTATION}app is ignored since Kubernetes 1.27)",
            id="container-annotation",
        ),
        pytest.param(
            {POD_ANNOTATION: "runtime/default", CONTAINER_ANNOTATION + "app": "localhost/p"},
            f"(the annotation {POD_ANNOTATION} and {CONTAINER_ANNOTATION}app are ignored",
            id="both-annotations",
        ),
    ],
)
def test_legacy_annotations_do_not_count(annotations: dict[str, str], note: str) -> None:
    findings = run("seccomp-profile", pod(ctr()), annotations=annotations)
    assert_findings(findings, [(f"{SC}.seccompProfile.type", "app", note)])
    assert run("seccomp-profile", pod(ctr()), level=Level.BASELINE, annotations=annotations) == []


def test_annotation_for_another_container_is_not_mentioned() -> None:
    [finding] = run(
        "seccomp-profile", pod(ctr()), annotations={CONTAINER_ANNOTATION + "other": "unconfined"}
    )
    assert "annotation" not in finding.message


def test_unconfined_annotation_is_ignored_like_the_kubelet_does() -> None:
    findings = run(
        "seccomp-profile",
        pod(ctr(), sc=RUNTIME_DEFAULT),
        annotations={POD_ANNOTATION: "unconfined"},
    )
    assert findings == []
