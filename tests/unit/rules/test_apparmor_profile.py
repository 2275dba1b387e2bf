"""apparmor-profile: the securityContext fields and the legacy per-container annotations."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
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

ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def profile(kind: Any) -> dict[str, Any]:
    return {"appArmorProfile": {"type": kind}}


FIELDS = [
    pytest.param(pod(), [], id="unset"),
    pytest.param(pod(sc=profile("RuntimeDefault")), [], id="pod-runtime-default"),
    pytest.param(
        pod(ctr(sc={"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-nginx"}})),
        [],
        id="container-localhost",
    ),
    pytest.param(
        pod(sc=profile("Unconfined")),
        [
            (
                f"{POD_SC}.appArmorProfile.type",
                None,
                'pod must not set securityContext.appArmorProfile.type to "Unconfined"; set '
                "appArmorProfile.type to RuntimeDefault",
            )
        ],
        id="pod-unconfined",
    ),
    pytest.param(
        pod(ctr(sc=profile("Unconfined")), sc=profile("RuntimeDefault")),
        [(f"{SC}.appArmorProfile.type", "app", 'container "app"')],
        id="container-unconfined-overrides-pod-runtime-default",
    ),
    pytest.param(
        pod(
            ctr(sc=profile("Unconfined")),
            init=[ctr("init", sc=profile("Unconfined"))],
            ephemeral=[ctr("debug", sc=profile("Unconfined"))],
            sc=profile("Unconfined"),
        ),
        [
            (f"{POD_SC}.appArmorProfile.type", None, "pod must not"),
            (f"{INIT_SC}.appArmorProfile.type", "init", 'container "init"'),
            (f"{SC}.appArmorProfile.type", "app", 'container "app"'),
            (f"{EPH_SC}.appArmorProfile.type", "debug", 'container "debug"'),
        ],
        id="every-offender-pod-first",
    ),
    pytest.param(
        pod(sc={"appArmorProfile": {}}),
        [(f"{POD_SC}.appArmorProfile.type", None, "to null")],
        id="profile-without-type",
    ),
    pytest.param(
        pod(sc=profile("runtime/default")),
        [(f"{POD_SC}.appArmorProfile.type", None, '"runtime/default"')],
        id="annotation-value-in-field",
    ),
    pytest.param(
        pod(ctr(sc={"appArmorProfile": "RuntimeDefault"})),
        [(f"{SC}.appArmorProfile", "app", "must be an object")],
        id="malformed-profile",
    ),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), FIELDS)
def test_fields(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("apparmor-profile", spec, level=level), expected)


ANNOTATIONS = [
    pytest.param({ANNOTATION + "app": "runtime/default"}, [], id="runtime-default"),
    pytest.param({ANNOTATION + "app": "localhost/k8s-nginx"}, [], id="localhost"),
    pytest.param({ANNOTATION + "app": ""}, [], id="empty"),
    pytest.param({"other.example/apparmor": "unconfined"}, [], id="unrelated-annotation"),
    pytest.param(
        {ANNOTATION + "app": "unconfined"},
        [
            (
                f"metadata.annotations[{ANNOTATION}app]",
                "app",
                f'annotation {ANNOTATION}app: "unconfined" must not disable or replace the '
                'AppArmor profile of container "app"',
            )
        ],
        id="unconfined",
    ),
    pytest.param(
        {ANNOTATION + "zed": "unconfined", ANNOTATION + "app": "docker-default"},
        [
            (f"metadata.annotations[{ANNOTATION}app]", "app", '"docker-default"'),
            (f"metadata.annotations[{ANNOTATION}zed]", "zed", '"unconfined"'),
        ],
        id="every-annotation-sorted-even-for-unknown-containers",
    ),
    pytest.param(
        {ANNOTATION + "app": None},
        [(f"metadata.annotations[{ANNOTATION}app]", "app", "null")],
        id="malformed-value",
    ),
    pytest.param({7: "unconfined"}, [], id="malformed-key-ignored"),
]


@pytest.mark.parametrize(("annotations", "expected"), ANNOTATIONS)
def test_legacy_annotations(annotations: dict[Any, Any], expected: list[Expected]) -> None:
    findings = run("apparmor-profile", pod(), level=Level.BASELINE, annotations=annotations)
    assert_findings(findings, expected)


def test_annotation_path_uses_the_workload_metadata_path() -> None:
    findings = run(
        "apparmor-profile",
        pod(),
        annotations={ANNOTATION + "app": "unconfined"},
        spec_path="spec.template.spec",
        metadata_path="spec.template.metadata",
    )
    assert [f.field for f in findings] == [f"spec.template.metadata.annotations[{ANNOTATION}app]"]


def test_field_and_annotation_both_reported() -> None:
    findings = run(
        "apparmor-profile",
        pod(ctr(sc=profile("Unconfined"))),
        annotations={ANNOTATION + "app": "unconfined"},
    )
    assert [f.field for f in findings] == [
        f"{SC}.appArmorProfile.type",
        f"metadata.annotations[{ANNOTATION}app]",
    ]
