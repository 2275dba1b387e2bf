"""capabilities: containers add no capabilities beyond the runtime's defaults; restricted: drop ALL.

Spec:
- baseline: ``securityContext.capabilities.add`` of every init, regular and ephemeral container
  holds only AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE,
  SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT (undefined or empty is fine).
- restricted (``settings.restricted``): ``capabilities.drop`` must include ``ALL``, and ``add``
  may hold only NET_BIND_SERVICE. Windows pods (``spec.os.name: windows``) are exempt from the
  restricted demands, as in pod-security-admission; the baseline list still applies to them.

Versions, as pod-security-admission: the restricted demands apply from Kubernetes 1.22 and
exempt Windows pods from 1.25; a policy pinned to an older ``podSecurityVersion`` gets the check
of its version.

Names compare exactly as written (``CAP_SYS_ADMIN`` or ``sys_admin`` is not on any list), which
fails closed. A non-list ``add`` is a violation; a non-list ``drop`` does not drop ALL.
"""

from __future__ import annotations

from collections.abc import Mapping

from mamori.findings import Finding
from mamori.podspec import PodContext, as_mapping
from mamori.rules._common import Scope, quote_all, show
from mamori.rules.registry import Level, RuleSettings, rule

BASELINE_ADDABLE = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_ADDABLE = frozenset({"NET_BIND_SERVICE"})
DROP_EVERYTHING = "ALL"


def _check_1_0(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    """Before 1.22: only the baseline list, at every level."""
    return _judge(pod, restricted=False)


def _check_1_22(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    """1.22 to 1.24: Windows pods are no exception to the restricted demands."""
    return _judge(pod, restricted=settings.restricted)


@rule(
    rule_id="capabilities",
    level=Level.BASELINE,
    summary="only default capabilities added; restricted: drop ALL, add at most NET_BIND_SERVICE",
    since=25,
    older={0: _check_1_0, 22: _check_1_22},
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return _judge(pod, restricted=settings.restricted and not pod.windows)


def _judge(pod: PodContext, *, restricted: bool) -> list[Finding]:
    addable = RESTRICTED_ADDABLE if restricted else BASELINE_ADDABLE
    findings: list[Finding] = []
    for scope in pod.container_scopes:
        capabilities = scope.security_context.get("capabilities")
        if capabilities is None and not restricted:
            continue
        if type(capabilities) is not dict:
            capabilities = as_mapping(capabilities)
        if capabilities.get("add") is not None:
            findings.extend(_added(scope, capabilities, addable=addable, restricted=restricted))
        dropped = capabilities.get("drop")
        if restricted and not (isinstance(dropped, list) and DROP_EVERYTHING in dropped):
            findings.append(
                Finding(
                    field=scope.field("capabilities", "drop"),
                    container=scope.container,
                    message=f"{scope.label} must drop all capabilities: set "
                    'securityContext.capabilities.drop: ["ALL"]',
                )
            )
    return findings


def _added(
    scope: Scope, capabilities: Mapping[str, object], *, addable: frozenset[str], restricted: bool
) -> list[Finding]:
    added = capabilities.get("add")
    if added is None:
        return []
    field = scope.field("capabilities", "add")
    if not isinstance(added, list):
        return [
            Finding(
                field=field,
                container=scope.container,
                message=f"{scope.label} securityContext.capabilities.add must be a list of "
                f"capability names, got {show(added)}",
            )
        ]
    forbidden = sorted({item if isinstance(item, str) else show(item) for item in added} - addable)
    if not forbidden:
        return []
    if restricted:
        allowed = "the restricted level allows adding only NET_BIND_SERVICE"
    else:
        allowed = "the baseline level allows adding only " + ", ".join(sorted(BASELINE_ADDABLE))
    return [
        Finding(
            field=field,
            container=scope.container,
            message=f"{scope.label} must not add {quote_all(forbidden)} in "
            f"securityContext.capabilities.add; remove {'it' if len(forbidden) == 1 else 'them'} "
            f"({allowed})",
        )
    ]
