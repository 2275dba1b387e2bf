"""sysctls: the pod sets only sysctls that are namespaced and isolated from other pods.

Spec (baseline): every ``spec.securityContext.sysctls[*].name`` is one of the allow-list below
(pod-security-admission's list since Kubernetes 1.32). Any other name, or a malformed entry, is
a violation; ``sysctls`` that is not a list is one too.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext, as_mapping
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule

ALLOWED_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_wmem",
)
ALLOWED_HINT = "allowed: " + ", ".join(ALLOWED_SYSCTLS)


@rule(
    rule_id="sysctls",
    level=Level.BASELINE,
    summary="only the safe, namespaced sysctls",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
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
        if name in ALLOWED_SYSCTLS:
            continue
        findings.append(
            Finding(
                field=pod.field("securityContext", f"sysctls[{index}]", "name"),
                message=f"pod must not set sysctl {show(name)}: it is not namespaced or not "
                f"isolated from other pods on the node; remove it ({ALLOWED_HINT})",
            )
        )
    return findings
