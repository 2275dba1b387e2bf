"""selinux-options: container SELinux types only; no user or role."""

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


def selinux(**options: Any) -> dict[str, Any]:
    return {"seLinuxOptions": options}


CASES = [
    pytest.param(pod(), [], id="unset"),
    pytest.param(pod(sc=selinux()), [], id="empty-options"),
    pytest.param(pod(sc=selinux(type="")), [], id="empty-type"),
    *[
        pytest.param(pod(ctr(sc=selinux(type=kind))), [], id=f"type-{kind}")
        for kind in ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")
    ],
    pytest.param(pod(sc=selinux(level="s0:c123,c456")), [], id="level-is-free"),
    pytest.param(pod(sc=selinux(user="", role="")), [], id="empty-user-and-role"),
    pytest.param(
        pod(sc=selinux(type="spc_t")),
        [
            (
                f"{POD_SC}.seLinuxOptions.type",
                None,
                'pod must not set securityContext.seLinuxOptions.type to "spc_t"; remove it or '
                'use one of "container_t"',
            )
        ],
        id="pod-spc-t",
    ),
    pytest.param(
        pod(ctr(sc=selinux(user="system_u"))),
        [(f"{SC}.seLinuxOptions.user", "app", 'seLinuxOptions.user (got "system_u"); remove it')],
        id="container-user",
    ),
    pytest.param(
        pod(ctr(), init=[ctr("init", sc=selinux(role="system_r"))]),
        [(f"{INIT_SC}.seLinuxOptions.role", "init", 'container "init"')],
        id="init-container-role",
    ),
    pytest.param(
        pod(ctr(), ephemeral=[ctr("debug", sc=selinux(type="unconfined_t", user="u", role="r"))]),
        [
            (f"{EPH_SC}.seLinuxOptions.type", "debug", '"unconfined_t"'),
            (f"{EPH_SC}.seLinuxOptions.user", "debug", "seLinuxOptions.user"),
            (f"{EPH_SC}.seLinuxOptions.role", "debug", "seLinuxOptions.role"),
        ],
        id="ephemeral-every-sub-field",
    ),
    pytest.param(
        pod(ctr(sc=selinux(type="container_t")), sc=selinux(type="spc_t")),
        [(f"{POD_SC}.seLinuxOptions.type", None, "pod must not")],
        id="container-value-does-not-excuse-pod",
    ),
    pytest.param(
        pod(sc={"seLinuxOptions": "spc_t"}),
        [(f"{POD_SC}.seLinuxOptions", None, "must be an object")],
        id="malformed-options",
    ),
    pytest.param(
        pod(sc=selinux(type=["container_t"])),
        [(f"{POD_SC}.seLinuxOptions.type", None, '["container_t"]')],
        id="malformed-type",
    ),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_selinux_options(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("selinux-options", spec, level=level), expected)
