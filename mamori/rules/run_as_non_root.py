"""run-as-non-root: every container is required to run as a non-root user.

Spec (restricted), as in pod-security-admission:
- ``spec.securityContext.runAsNonRoot``: undefined or ``true``;
- each init, regular and ephemeral container's ``securityContext.runAsNonRoot``: ``true``, or
  undefined when the pod sets ``true``. A container value wins over the pod's, so a container
  ``false`` fails even under a pod ``true``. ``runAsUser`` alone does not satisfy this rule
  (``run-as-user`` checks it); a bad pod value is reported once, on the pod.
- any value is allowed in a pod with its own user namespace (``spec.hostUsers: false``), since
  Kubernetes 1.35: a policy pinned to an older ``podSecurityVersion`` makes no such exception.

``runAsNonRoot: true`` without a numeric ``runAsUser`` (container's, else pod's) is allowed with
an advisory finding: the kubelet then starts the container only if its image declares a numeric
non-root ``USER``; a user name or root makes the pod fail at start instead of at admission.
Windows pods get no advisory (they cannot set ``runAsUser``).
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import (
    MAX_UID,
    USER_NAMESPACES_EXEMPT,
    Scope,
    every_pod,
    is_uid,
    show,
)
from mamori.rules.registry import Level, RuleSettings, rule


def _judge(pod: PodContext) -> list[Finding]:
    findings: list[Finding] = []
    pod_level = pod.pod_scope
    pod_value = pod_level.security_context.get("runAsNonRoot")
    if pod_value is not None and pod_value is not True:
        findings.append(
            Finding(
                field=pod_level.field("runAsNonRoot"),
                message=f"pod must not set securityContext.runAsNonRoot: {show(pod_value)}; "
                "set it to true",
            )
        )
    pod_uid = pod_level.security_context.get("runAsUser")
    for scope in pod.container_scopes:
        security_context = scope.security_context
        value = security_context.get("runAsNonRoot")
        if value is True or (value is None and pod_value is True):
            own = security_context.get("runAsUser")
            uid = own if own is not None else pod_uid
            if (type(uid) is int and 0 <= uid <= MAX_UID) or pod.windows or is_uid(uid):
                continue  # a numeric UID is set (the common case first), or Windows: no advice
            findings.append(_advice(scope))
        elif value is not None:
            findings.append(
                Finding(
                    field=scope.field("runAsNonRoot"),
                    container=scope.container,
                    message=f"{scope.label} must not set securityContext.runAsNonRoot: "
                    f"{show(value)}; set it to true",
                )
            )
        elif pod_value is None:
            findings.append(
                Finding(
                    field=scope.field("runAsNonRoot"),
                    container=scope.container,
                    message=f"{scope.label} must set securityContext.runAsNonRoot: true "
                    "(on the container, or once on the pod)",
                )
            )
    return findings


def _advice(scope: Scope) -> Finding:
    return Finding(
        field=scope.field("runAsUser"),
        container=scope.container,
        advisory=True,
        message=f"{scope.label} sets runAsNonRoot: true but no numeric runAsUser: its image must "
        "declare a numeric non-root USER (e.g. USER 10001), or the kubelet refuses to start it; "
        "or set securityContext.runAsUser to a non-zero UID",
    )


@rule(
    rule_id="run-as-non-root",
    level=Level.RESTRICTED,
    summary="runAsNonRoot: true on the pod or every container",
    since=USER_NAMESPACES_EXEMPT,
    older={0: every_pod(_judge)},
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return [] if pod.user_namespace else _judge(pod)
