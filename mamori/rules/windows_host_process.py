"""windows-host-process: no Windows HostProcess containers.

Spec (baseline): ``securityContext.windowsOptions.hostProcess`` of the pod and of every init,
regular and ephemeral container must be undefined or ``false``. A HostProcess container runs
directly on the Windows node with the node's privileges.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext, as_mapping
from mamori.rules._common import is_on, show
from mamori.rules.registry import Level, RuleSettings, rule


@rule(
    rule_id="windows-host-process",
    level=Level.BASELINE,
    summary="no Windows HostProcess containers",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    for scope in pod.scopes():
        options = scope.security_context.get("windowsOptions")
        if options is None:
            continue
        value = as_mapping(options).get("hostProcess")
        if is_on(value):
            findings.append(
                Finding(
                    field=scope.field("windowsOptions", "hostProcess"),
                    container=scope.container,
                    message=f"{scope.label} must not set "
                    f"securityContext.windowsOptions.hostProcess: {show(value)}; remove it or "
                    "set it to false",
                )
            )
    return findings
