"""proc-mount: containers keep the default masks on /proc.

Spec, for ``securityContext.procMount`` of every init, regular and ephemeral container:
undefined or ``Default``. ``Unmasked`` exposes /proc paths the runtime hides.
- baseline: any value is allowed in a pod with its own user namespace (``spec.hostUsers:
  false``), as pod-security-admission allows since Kubernetes 1.35.
- restricted (``settings.restricted``): no exception.

Versions: a policy pinned to a ``podSecurityVersion`` before 1.35 makes no user-namespace
exception at any level.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule

DEFAULT = "Default"


def _check_1_0(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    """Before 1.35: a user namespace is no exception."""
    return _judge(pod)


@rule(
    rule_id="proc-mount",
    level=Level.BASELINE,
    summary="procMount is Default (baseline: any in a user namespace)",
    since=35,
    older={0: _check_1_0},
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    if not settings.restricted and pod.user_namespace:
        return []
    return _judge(pod)


def _judge(pod: PodContext) -> list[Finding]:
    findings: list[Finding] = []
    for scope in pod.container_scopes:
        value = scope.security_context.get("procMount")
        if value is None or value == DEFAULT:
            continue
        findings.append(
            Finding(
                field=scope.field("procMount"),
                container=scope.container,
                message=f"{scope.label} must not set securityContext.procMount to {show(value)}; "
                "remove it or set it to Default",
            )
        )
    return findings
