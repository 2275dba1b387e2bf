"""selinux-options: no custom SELinux user or role, and only the container SELinux types.

Spec (baseline), for ``securityContext.seLinuxOptions`` of the pod and of every init, regular
and ephemeral container:
- ``type``: undefined, empty, ``container_t``, ``container_init_t``, ``container_kvm_t`` or
  ``container_engine_t``;
- ``user`` and ``role``: undefined or empty;
- ``level`` is not restricted.
A ``seLinuxOptions`` that is not an object is a violation.

Versions: ``container_engine_t`` is allowed from Kubernetes 1.31, as in pod-security-admission;
a policy pinned to an older ``podSecurityVersion`` refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import Scope, quote_all, show
from mamori.rules.registry import Level, RuleSettings, rule

ALLOWED_TYPES = ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")
ALLOWED_TYPES_1_0 = ("container_t", "container_init_t", "container_kvm_t")
FORBIDDEN_KEYS = ("user", "role")


def _check_1_0(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    """Before 1.31: container_engine_t is not a container type yet."""
    return _judge(pod, ALLOWED_TYPES_1_0)


@rule(
    rule_id="selinux-options",
    level=Level.BASELINE,
    summary="SELinux type is a container type; user and role unset",
    since=31,
    older={0: _check_1_0},
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return _judge(pod, ALLOWED_TYPES)


def _judge(pod: PodContext, allowed: tuple[str, ...]) -> list[Finding]:
    findings: list[Finding] = []
    for scope in pod.scopes():
        if scope.security_context.get("seLinuxOptions") is not None:
            findings.extend(_check_scope(scope, allowed))
    return findings


def _check_scope(scope: Scope, allowed: tuple[str, ...]) -> list[Finding]:
    options = scope.security_context.get("seLinuxOptions")
    if options is None:
        return []
    if not isinstance(options, Mapping):
        return [
            Finding(
                field=scope.field("seLinuxOptions"),
                container=scope.container,
                message=f"{scope.label} securityContext.seLinuxOptions must be an object, got "
                f"{show(options)}",
            )
        ]
    findings: list[Finding] = []
    selinux_type = options.get("type")
    if selinux_type not in (None, "", *allowed):
        findings.append(
            Finding(
                field=scope.field("seLinuxOptions", "type"),
                container=scope.container,
                message=f"{scope.label} must not set securityContext.seLinuxOptions.type to "
                f"{show(selinux_type)}; remove it or use one of {quote_all(allowed)}",
            )
        )
    for key in FORBIDDEN_KEYS:
        value = options.get(key)
        if value not in (None, ""):
            findings.append(
                Finding(
                    field=scope.field("seLinuxOptions", key),
                    container=scope.container,
                    message=f"{scope.label} must not set securityContext.seLinuxOptions.{key} "
                    f"(got {show(value)}); remove it",
                )
            )
    return findings
