"""Builders and assertions shared by the Pod Security Standards rule tables.

Pods here are plain dicts, small enough to read in a table row: ``pod(ctr("app", sc={...}))``.
Expected findings are ``(field, container, fragment)`` triples: the full field path, the
container name (None for the pod) and a piece of text the message must contain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules import RULES, Level, RuleSettings

IMAGE = "registry.k8s.io/pause:3.10"
POD_SC = "spec.securityContext"
SC = "spec.containers[0].securityContext"
SC1 = "spec.containers[1].securityContext"
INIT_SC = "spec.initContainers[0].securityContext"
EPH_SC = "spec.ephemeralContainers[0].securityContext"

Expected = tuple[str, str | None, str]


def ctr(name: str = "app", sc: Any = None, **fields: Any) -> dict[str, Any]:
    """A container; ``sc`` becomes its securityContext (any value, to test malformed ones)."""
    container: dict[str, Any] = {"name": name, "image": IMAGE, **fields}
    if sc is not None:
        container["securityContext"] = sc
    return container


def pod(
    *containers: dict[str, Any],
    init: Iterable[dict[str, Any]] = (),
    ephemeral: Iterable[dict[str, Any]] = (),
    sc: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    """A pod spec; ``sc`` becomes the pod securityContext, ``fields`` other spec fields."""
    spec: dict[str, Any] = {"containers": list(containers) or [ctr()], **fields}
    if init:
        spec["initContainers"] = list(init)
    if ephemeral:
        spec["ephemeralContainers"] = list(ephemeral)
    if sc is not None:
        spec["securityContext"] = sc
    return spec


def windows(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "os": {"name": "windows"}}


def run(
    rule_id: str,
    spec: Mapping[str, Any],
    *,
    level: Level = Level.RESTRICTED,
    annotations: Mapping[str, Any] | None = None,
    spec_path: str = "spec",
    metadata_path: str = "metadata",
) -> list[Finding]:
    """Call one registered rule directly, the way the engine does for one policy."""
    context = PodContext(
        spec=spec,
        metadata={"annotations": dict(annotations)} if annotations is not None else {},
        spec_path=spec_path,
        metadata_path=metadata_path,
    )
    findings = RULES.get(rule_id).check(context, RuleSettings(pod_security=level))
    assert isinstance(findings, list)
    assert all(isinstance(finding, Finding) for finding in findings)
    return findings


def assert_findings(findings: list[Finding], expected: list[Expected]) -> None:
    """Exactly these violations, in this order, each message holding its fragment."""
    violations = [finding for finding in findings if not finding.advisory]
    assert [(f.field, f.container) for f in violations] == [(e[0], e[1]) for e in expected]
    for finding, (_, _, fragment) in zip(violations, expected, strict=True):
        assert fragment in finding.message, finding.message


def advice(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return [(f.field, f.container) for f in findings if f.advisory]
