"""privileged: no container runs privileged.

Spec (baseline): ``securityContext.privileged`` of every init, regular and ephemeral container
must be undefined or ``false``. A privileged container has every capability and the node's
devices; it is root on the node in all but name.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule


@rule(
    rule_id="privileged",
    level=Level.BASELINE,
    summary="no privileged containers",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    for scope in pod.container_scopes:
        value = scope.security_context.get("privileged")
        if value is not None and value is not False:  # is_on, inline: every container, every pod
            findings.append(
                Finding(
                    field=scope.field("privileged"),
                    container=scope.container,
                    message=f"{scope.label} must not set securityContext.privileged: "
                    f"{show(value)}; remove it or set it to false",
                )
            )
    return findings
