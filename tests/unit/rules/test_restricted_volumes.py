"""restricted-volumes: only the volume types that stay inside the pod's own storage."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.rules import RULES, Level
from tests.unit.rules.pss import Expected, assert_findings, pod, run

ALLOWED = [
    {"name": "config", "configMap": {"name": "settings"}},
    {"name": "creds", "secret": {"secretName": "creds"}},
    {"name": "tmp", "emptyDir": {}},
    {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
    {"name": "labels", "downwardAPI": {"items": []}},
    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    {"name": "store", "csi": {"driver": "secrets-store.csi.k8s.io"}},
    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
    {"name": "model", "image": {"reference": "registry.k8s.io/pause:3.10"}},
]

CASES = [
    pytest.param(pod(), [], id="no-volumes"),
    pytest.param(pod(volumes=ALLOWED), [], id="every-allowed-type"),
    pytest.param(pod(volumes=[{"name": "defaulted"}]), [], id="no-source-defaults-to-empty-dir"),
    pytest.param(
        pod(volumes=[{"name": "share", "nfs": {"server": "nfs.example", "path": "/"}}]),
        [
            (
                "spec.volumes[0].nfs",
                None,
                'volume "share" must not use volume type "nfs"; use one of configMap, csi,',
            )
        ],
        id="nfs",
    ),
    pytest.param(
        pod(
            volumes=[
                {"name": "tmp", "emptyDir": {}},
                {"name": "ebs", "awsElasticBlockStore": {"volumeID": "vol-1"}},
                {"name": "repo", "gitRepo": {"repository": "https://example.invalid/r.git"}},
            ]
        ),
        [
            ("spec.volumes[1].awsElasticBlockStore", None, '"awsElasticBlockStore"'),
            ("spec.volumes[2].gitRepo", None, '"gitRepo"'),
        ],
        id="every-offender",
    ),
    pytest.param(
        pod(volumes=[{"name": "x", "configMap": {"name": "c"}, "iscsi": {"lun": 0}}]),
        [("spec.volumes[0].iscsi", None, '"iscsi"')],
        id="allowed-source-does-not-hide-a-second-one",
    ),
    pytest.param(
        pod(volumes=[{"name": "x", "futureVolume": {}}]),
        [("spec.volumes[0].futureVolume", None, '"futureVolume"')],
        id="unknown-type-fails-closed",
    ),
    pytest.param(
        pod(volumes=[{"name": "x", "nfs": None, "emptyDir": {}}]), [], id="null-source-is-unset"
    ),
    pytest.param(
        pod(volumes=[{"name": "host", "hostPath": {"path": "/"}}]),
        [],
        id="host-path-left-to-host-path-volumes",
    ),
    pytest.param(
        pod(volumes=["nfs"]),
        [("spec.volumes[0]", None, 'volume #0 must be an object, got "nfs"')],
        id="malformed-volume",
    ),
    pytest.param(
        pod(volumes={"name": "x"}),
        [("spec.volumes", None, "must be a list")],
        id="malformed-volume-list",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_restricted_volumes(spec: dict[str, Any], expected: list[Expected]) -> None:
    assert_findings(run("restricted-volumes", spec), expected)


def test_restricted_only() -> None:
    assert RULES.get("restricted-volumes").level is Level.RESTRICTED


def test_host_path_is_reported_once_at_restricted() -> None:
    spec = pod(volumes=[{"name": "host", "hostPath": {"path": "/"}}])
    reported = {
        rule.id
        for rule in RULES
        if rule.level is not Level.IMAGE and run(rule.id, spec, level=Level.RESTRICTED)
    }
    assert "host-path-volumes" in reported
    assert "restricted-volumes" not in reported
