"""host-ports: no container binds a port of the node.

Spec (baseline): ``ports[*].hostPort`` of every init, regular and ephemeral container must be
undefined or 0. A non-integer value is a violation (fail closed).
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext, as_mapping
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule


@rule(
    rule_id="host-ports",
    level=Level.BASELINE,
    summary="no hostPort",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    for container in pod.containers():
        ports = container.spec.get("ports")
        if not isinstance(ports, list):
            continue
        for index, port in enumerate(ports):
            host_port = (port if type(port) is dict else as_mapping(port)).get("hostPort")
            if host_port is None or (type(host_port) is int and host_port == 0):
                continue
            findings.append(
                Finding(
                    field=container.field(f"ports[{index}]", "hostPort"),
                    container=container.name,
                    message=f'container "{container.name}" must not use hostPort '
                    f"{show(host_port)}; remove hostPort and reach the pod through a Service",
                )
            )
    return findings
