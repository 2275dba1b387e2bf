"""host-path-volumes: no volume mounts a path of the node.

Spec (baseline): ``spec.volumes[*].hostPath`` must be undefined. A hostPath volume reads or
writes the node's file system (its container runtime socket, its kubelet credentials).
Malformed volumes (not an object) are left to ``restricted-volumes``.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext, as_mapping
from mamori.rules._common import item_name, show
from mamori.rules.registry import Level, RuleSettings, rule


@rule(
    rule_id="host-path-volumes",
    level=Level.BASELINE,
    summary="no hostPath volumes",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    volumes = pod.spec.get("volumes")
    if not isinstance(volumes, list):
        return []
    findings: list[Finding] = []
    for index, raw in enumerate(volumes):
        volume = as_mapping(raw)
        host_path = volume.get("hostPath")
        if host_path is None:
            continue
        name = item_name(volume, index=index, kind="volumes")
        path = as_mapping(host_path).get("path")
        where = f" (node path {show(path)})" if path is not None else ""
        findings.append(
            Finding(
                field=pod.field(f"volumes[{index}]", "hostPath"),
                message=f'volume "{name}" must not use hostPath{where}; use a '
                "persistentVolumeClaim, configMap, secret or emptyDir volume instead",
            )
        )
    return findings
