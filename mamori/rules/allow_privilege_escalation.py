"""allow-privilege-escalation: no process can gain more privileges than its parent.

Spec (restricted): ``securityContext.allowPrivilegeEscalation`` of every init, regular and
ephemeral container must be exactly ``false``; undefined counts as true (the runtime's default),
as does anything that is not the boolean ``false``. Windows pods (``spec.os.name: windows``) are
exempt, as in pod-security-admission: the field does not exist on Windows.

Versions: pod-security-admission checks this from Kubernetes 1.8 and exempts Windows pods from
1.25; a policy pinned to an older ``podSecurityVersion`` gets its version's check.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule


def _check_1_8(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    """1.8 to 1.24: Windows pods are no exception."""
    return _judge(pod)


@rule(
    rule_id="allow-privilege-escalation",
    level=Level.RESTRICTED,
    summary="allowPrivilegeEscalation: false in every container",
    since=25,
    older={8: _check_1_8},
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    if pod.windows:
        return []
    return _judge(pod)


def _judge(pod: PodContext) -> list[Finding]:
    findings: list[Finding] = []
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
