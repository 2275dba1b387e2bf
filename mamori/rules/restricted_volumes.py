"""restricted-volumes: only volume types that cannot reach outside the pod's own storage.

Spec (restricted): every ``spec.volumes[*]`` uses one of configMap, csi, downwardAPI, emptyDir,
ephemeral, image, persistentVolumeClaim, projected, secret. Any other source (nfs, iscsi,
awsElasticBlockStore, gitRepo, ... or a key this list does not know) is a violation, even next
to an allowed one. A volume with no source at all is allowed: the API server defaults it to
emptyDir. A volume that is not an object is a violation. ``hostPath`` is reported by
``host-path-volumes`` (which runs at both levels), not twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import item_name, show
from mamori.rules.registry import Level, RuleSettings, rule

ALLOWED_SOURCES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
NOT_A_SOURCE = "name"
REPORTED_ELSEWHERE = "hostPath"
NOT_JUDGED_HERE = frozenset({NOT_A_SOURCE, REPORTED_ELSEWHERE, *ALLOWED_SOURCES})
FIX = (
    "use one of " + ", ".join(ALLOWED_SOURCES) + " (put network or cloud storage behind a "
    "PersistentVolumeClaim)"
)


@rule(
    rule_id="restricted-volumes",
    level=Level.RESTRICTED,
    summary="only configMap, csi, downwardAPI, emptyDir, ephemeral, image, PVC, projected, secret",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    volumes = pod.spec.get("volumes")
    if volumes is None:
        return []
    if not isinstance(volumes, list):
        return [
            Finding(
                field=pod.field("volumes"),
                message=f"pod spec.volumes must be a list, got {show(volumes)}",
            )
        ]
    findings: list[Finding] = []
    for index, volume in enumerate(volumes):
        if type(volume) is not dict and not isinstance(volume, Mapping):
            findings.append(
                Finding(
                    field=pod.field(f"volumes[{index}]"),
                    message=f"volume #{index} must be an object, got {show(volume)}; {FIX}",
                )
            )
            continue
        for source, value in volume.items():
            if value is None or source in NOT_JUDGED_HERE:
                continue
            name = item_name(volume, index=index, kind="volumes")
            findings.append(
                Finding(
                    field=pod.field(f"volumes[{index}]", str(source)),
                    message=f'volume "{name}" must not use volume type {show(source)}; {FIX}',
                )
            )
    return findings
