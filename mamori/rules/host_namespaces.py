"""host-namespaces: the pod does not join the node's network, process or IPC namespace.

Spec (baseline): ``spec.hostNetwork``, ``spec.hostPID`` and ``spec.hostIPC`` must be undefined
or ``false``. Anything else (including a non-boolean) is a violation.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import is_on, show
from mamori.rules.registry import Level, RuleSettings, rule

HOST_NAMESPACES = (
    ("hostNetwork", "network"),
    ("hostPID", "process"),
    ("hostIPC", "IPC"),
)


@rule(
    rule_id="host-namespaces",
    level=Level.BASELINE,
    summary="no hostNetwork, hostPID or hostIPC",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    spec = pod.spec
    for key, namespace in HOST_NAMESPACES:
        value = spec.get(key)
        if value is not None and is_on(value):
            findings.append(
                Finding(
                    field=pod.field(key),
                    message=f"pod must not set {key}: {show(value)} (it would share the "
                    f"node's {namespace} namespace); remove {key} or set it to false",
                )
            )
    return findings
