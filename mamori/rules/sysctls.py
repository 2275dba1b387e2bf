"""sysctls: the pod sets only sysctls that are namespaced and isolated from other pods.

Spec (baseline): every ``spec.securityContext.sysctls[*].name`` is one of the allow-list below
(pod-security-admission's list since Kubernetes 1.32). Any other name, or a malformed entry, is
a violation; ``sysctls`` that is not a list is one too.

Versions: the list grew with Kubernetes (:data:`ADDED_IN`); a policy pinned to an older
``podSecurityVersion`` allows only the sysctls of its version.
"""

from __future__ import annotations

from collections.abc import Mapping

from mamori.findings import Finding
from mamori.podspec import PodContext, as_mapping
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule

# The Kubernetes minor version each sysctl joined pod-security-admission's allow-list in.
ADDED_IN: Mapping[str, int] = {
    "kernel.shm_rmid_forced": 0,
    "net.ipv4.ip_local_port_range": 0,
    "net.ipv4.ip_local_reserved_ports": 27,
    "net.ipv4.ip_unprivileged_port_start": 0,
    "net.ipv4.ping_group_range": 0,
    "net.ipv4.tcp_fin_timeout": 29,
    "net.ipv4.tcp_keepalive_intvl": 29,
    "net.ipv4.tcp_keepalive_probes": 29,
    "net.ipv4.tcp_keepalive_time": 29,
    "net.ipv4.tcp_rmem": 32,
    "net.ipv4.tcp_syncookies": 0,
    "net.ipv4.tcp_wmem": 32,
}
ALLOWED_SYSCTLS = tuple(ADDED_IN)


def allowed_at(minor: int) -> tuple[str, ...]:
    """The allow-list of Kubernetes ``1.<minor>``."""
    return tuple(name for name, since in ADDED_IN.items() if since <= minor)


ALLOWED_1_0, ALLOWED_1_27, ALLOWED_1_29 = allowed_at(0), allowed_at(27), allowed_at(29)


def _check_1_0(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return _judge(pod, ALLOWED_1_0)


def _check_1_27(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return _judge(pod, ALLOWED_1_27)


def _check_1_29(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return _judge(pod, ALLOWED_1_29)


@rule(
    rule_id="sysctls",
    level=Level.BASELINE,
    summary="only the safe, namespaced sysctls",
    since=32,
    older={0: _check_1_0, 27: _check_1_27, 29: _check_1_29},
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return _judge(pod, ALLOWED_SYSCTLS)


def _judge(pod: PodContext, allowed: tuple[str, ...]) -> list[Finding]:
    sysctls = pod.security_context.get("sysctls")
    if sysctls is None:
        return []
    if not isinstance(sysctls, list):
        return [
            Finding(
                field=pod.field("securityContext", "sysctls"),
                message=f"pod securityContext.sysctls must be a list of name/value pairs, got "
                f"{show(sysctls)}",
            )
        ]
    findings: list[Finding] = []
    for index, entry in enumerate(sysctls):
        name = as_mapping(entry).get("name")
        if name in allowed:
            continue
        findings.append(
            Finding(
                field=pod.field("securityContext", f"sysctls[{index}]", "name"),
                message=f"pod must not set sysctl {show(name)}: it is not namespaced or not "
                f"isolated from other pods on the node; remove it (allowed: {', '.join(allowed)})",
            )
        )
    return findings
