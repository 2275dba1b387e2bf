"""sysctls: only pod-security-admission's current allow-list."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import Level
from mamori.rules.sysctls import ALLOWED_SYSCTLS
from tests.unit.rules.pss import POD_SC, Expected, assert_findings, pod, run


def sysctls(*names: Any) -> dict[str, Any]:
    return {"sysctls": [{"name": name, "value": "1"} for name in names]}


CASES = [
    pytest.param(pod(), [], id="unset"),
    pytest.param(pod(sc={"sysctls": []}), [], id="empty"),
    pytest.param(pod(sc=sysctls(*ALLOWED_SYSCTLS)), [], id="whole-allow-list"),
    pytest.param(pod(sc=sysctls("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")), [], id="added-in-1-32"),
    pytest.param(
        pod(sc=sysctls("kernel.msgmax")),
        [
            (
                f"{POD_SC}.sysctls[0].name",
                None,
                'pod must not set sysctl "kernel.msgmax": it is not namespaced or not isolated '
                "from other pods on the node; remove it (allowed: kernel.shm_rmid_forced,",
            )
        ],
        id="kernel-msgmax",
    ),
    pytest.param(
        pod(sc=sysctls("net.ipv4.tcp_syncookies", "net.ipv4.ip_forward", "net.core.somaxconn")),
        [
            (f"{POD_SC}.sysctls[1].name", None, '"net.ipv4.ip_forward"'),
            (f"{POD_SC}.sysctls[2].name", None, '"net.core.somaxconn"'),
        ],
        id="every-offender-by-index",
    ),
    pytest.param(
        pod(sc=sysctls("net.ipv4.ip_local_port_range ")),
        [(f"{POD_SC}.sysctls[0].name", None, "ip_local_port_range ")],
        id="names-compare-exactly",
    ),
    pytest.param(
        pod(sc={"sysctls": [{"value": "1"}, "kernel.msgmax"]}),
        [
            (f"{POD_SC}.sysctls[0].name", None, "sysctl null"),
            (f"{POD_SC}.sysctls[1].name", None, "sysctl null"),
        ],
        id="malformed-entries",
    ),
    pytest.param(
        pod(sc={"sysctls": {"kernel.msgmax": "1"}}),
        [(f"{POD_SC}.sysctls", None, "must be a list")],
        id="malformed-map",
    ),
]


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_sysctls(spec: dict[str, Any], expected: list[Expected], level: Level) -> None:
    assert_findings(run("sysctls", spec, level=level), expected)


def test_allow_list_is_pod_security_admissions_1_32_list() -> None:
    assert len(ALLOWED_SYSCTLS) == 12
    assert set(ALLOWED_SYSCTLS) >= {"net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_fin_timeout"}
