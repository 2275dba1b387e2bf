"""host-probes: probes and lifecycle handlers target the pod itself, not another host.

Spec (baseline), for every init, regular and ephemeral container: ``host`` under
``livenessProbe``, ``readinessProbe`` and ``startupProbe`` (``httpGet`` and ``tcpSocket``) and
under ``lifecycle.postStart`` / ``lifecycle.preStop`` (``httpGet`` and the deprecated
``tcpSocket``) must be undefined or empty. The kubelet makes these requests from the node, so a
``host`` turns the pod spec into a way to reach anything the node can reach.

Versions: pod-security-admission added this check in Kubernetes 1.34; a policy pinned to an
older ``podSecurityVersion`` does not run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mamori.findings import Finding
from mamori.podspec import ContainerRef, PodContext, as_mapping
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_HOOKS = ("postStart", "preStop")
HANDLERS = ("httpGet", "tcpSocket")


@rule(
    rule_id="host-probes",
    level=Level.BASELINE,
    summary="probes and lifecycle handlers set no host",
    since=34,
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    for container in pod.containers():
        spec = container.spec
        for probe in PROBES:
            handler = spec.get(probe)
            if not handler:
                continue
            if type(handler) is dict and handler.get("tcpSocket") is None:
                http = handler.get("httpGet")  # most probes: an httpGet without host, or exec
                if http is None or (
                    type(http) is dict and ((host := http.get("host")) is None or host == "")
                ):
                    continue
            findings.extend(_hosts(container, (probe,), as_mapping(handler)))
        lifecycle = spec.get("lifecycle")
        if lifecycle:
            lifecycle = as_mapping(lifecycle)
            for hook in LIFECYCLE_HOOKS:
                handler = lifecycle.get(hook)
                if handler and _may_name_a_host(handler):
                    findings.extend(_hosts(container, ("lifecycle", hook), as_mapping(handler)))
    return findings


def _may_name_a_host(handler: object) -> bool:
    """False only when :func:`_hosts` surely finds nothing: most pods have probes to skip."""
    if type(handler) is not dict:
        return True
    for kind in HANDLERS:
        target = handler.get(kind)
        if target is None:
            continue
        if type(target) is not dict:
            return True
        host = target.get("host")
        if host is not None and host != "":
            return True
    return False


def _hosts(
    container: ContainerRef, path: tuple[str, ...], handler: Mapping[str, Any]
) -> list[Finding]:
    findings: list[Finding] = []
    for kind in HANDLERS:
        target = handler.get(kind)
        if target is None:
            continue
        host = as_mapping(target).get("host")
        if host is None or host == "":
            continue
        where = ".".join((*path, kind, "host"))
        advice = " (set a Host header in httpHeaders if the server needs one)"
        findings.append(
            Finding(
                field=container.field(*path, kind, "host"),
                container=container.name,
                message=f'container "{container.name}" must not set {where}: {show(host)}; '
                "remove host so the kubelet targets the pod's own IP"
                + (advice if kind == "httpGet" else ""),
            )
        )
    return findings
