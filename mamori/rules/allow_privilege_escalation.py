"""allow-privilege-escalation: no process can gain more privileges than its parent.

Spec (restricted): ``securityContext.allowPrivilegeEscalation`` of every init, regular and
ephemeral container must be exactly ``false``; undefined counts as true (the runtime's default),
as does anything that is not the boolean ``false``. Windows pods (``spec.os.name: windows``) are
exempt, as in pod-security-admission: the field does not exist on Windows.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule


@rule(
    rule_id="allow-privilege-escalation",
    level=Level.RESTRICTED,
    summary="allowPrivilegeEscalation: false in every container",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    if pod.windows:
        return findings
    for scope in pod.container_scopes:
        value = scope.security_context.get("allowPrivilegeEscalation")
        if value is False:
            continue
        if value is None:
            problem = "must set securityContext.allowPrivilegeEscalation: false (default: true)"
        else:
            problem = (
                f"must not set securityContext.allowPrivilegeEscalation: {show(value)}; "
                "set it to false"
            )
        findings.append(
            Finding(
                field=scope.field("allowPrivilegeEscalation"),
                container=scope.container,
                message=f"{scope.label} {problem}",
            )
        )
    return findings
