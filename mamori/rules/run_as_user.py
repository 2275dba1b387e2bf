"""run-as-user: nothing is set to run as root (UID 0).

Spec (restricted): ``securityContext.runAsUser`` of the pod and of every init, regular and
ephemeral container: undefined or a non-zero UID (1..2147483647). ``0`` is a violation wherever
it appears; a value that is not a UID (``"1000"``, ``-1``, ``true``) is one too. Any value is
allowed in a pod with its own user namespace (``spec.hostUsers: false``), where UID 0 maps to an
unprivileged user on the node, as in pod-security-admission since Kubernetes 1.35.

Versions: pod-security-admission added this check in Kubernetes 1.23 and the user-namespace
exception in 1.35; a policy pinned to an older ``podSecurityVersion`` gets its version's check.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import (
    MAX_UID,
    USER_NAMESPACES_EXEMPT,
    every_pod,
    is_uid,
    show,
)
from mamori.rules.registry import Level, RuleSettings, rule

ROOT = 0


def _judge(pod: PodContext) -> list[Finding]:
    findings: list[Finding] = []
    for scope in pod.scopes():
        value = scope.security_context.get("runAsUser")
        if value is None or (type(value) is int and ROOT < value <= MAX_UID):
            continue  # the common cases first: unset, or a plain non-zero UID
        if is_uid(value) and value != ROOT:
            continue
        if is_uid(value):
            problem = "must not set securityContext.runAsUser: 0 (root)"
        else:
            problem = f"securityContext.runAsUser must be a numeric UID, got {show(value)}"
        findings.append(
            Finding(
                field=scope.field("runAsUser"),
                container=scope.container,
                message=f"{scope.label} {problem}; use a non-zero UID such as 10001",
            )
        )
    return findings


@rule(
    rule_id="run-as-user",
    level=Level.RESTRICTED,
    summary="runAsUser is never 0",
    since=USER_NAMESPACES_EXEMPT,
    older={23: every_pod(_judge)},
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return [] if pod.user_namespace else _judge(pod)
