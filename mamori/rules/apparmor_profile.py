"""apparmor-profile: AppArmor is not turned off or overridden with an arbitrary profile.

Spec (baseline):
- ``securityContext.appArmorProfile.type`` of the pod and of every init, regular and ephemeral
  container: undefined, ``RuntimeDefault`` or ``Localhost``. ``Unconfined`` (or an object
  without a valid type) is a violation.
- the legacy annotations ``container.apparmor.security.beta.kubernetes.io/<container>``:
  empty, ``runtime/default`` or ``localhost/<profile>``. ``unconfined`` (or any other value) is
  a violation, whether or not a container of that name exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import disallowed_profile, show
from mamori.rules.registry import Level, RuleSettings, rule

ALLOWED_TYPES = ("RuntimeDefault", "Localhost")
FIX = "set appArmorProfile.type to RuntimeDefault (or Localhost with localhostProfile)"
ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
RUNTIME_DEFAULT_ANNOTATION = "runtime/default"
LOCALHOST_ANNOTATION_PREFIX = "localhost/"


@rule(
    rule_id="apparmor-profile",
    level=Level.BASELINE,
    summary="AppArmor profile is RuntimeDefault or Localhost when set",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    for scope in pod.scopes():
        profile = scope.security_context.get("appArmorProfile")
        if profile is None or (type(profile) is dict and profile.get("type") in ALLOWED_TYPES):
            continue  # the common cases, decided as disallowed_profile decides them
        finding = disallowed_profile(scope, key="appArmorProfile", allowed=ALLOWED_TYPES, fix=FIX)
        if finding is not None:
            findings.append(finding)
    annotations = pod.annotations
    for key in annotations:  # most pods carry annotations, few carry AppArmor ones
        if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX):
            findings.extend(_annotations(pod, annotations))
            break
    return findings


def _annotations(pod: PodContext, annotations: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    for key, value in sorted(
        (key, value)
        for key, value in annotations.items()
        if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX)
    ):
        if isinstance(value, str) and (
            value in ("", RUNTIME_DEFAULT_ANNOTATION)
            or value.startswith(LOCALHOST_ANNOTATION_PREFIX)
        ):
            continue
        container = key.removeprefix(ANNOTATION_PREFIX)
        findings.append(
            Finding(
                field=f"{pod.metadata_path}.annotations[{key}]",
                container=container or None,
                message=f"annotation {key}: {show(value)} must not disable or replace the "
                f'AppArmor profile of container "{container}"; use runtime/default or '
                "localhost/<profile>, or better remove the annotation and set "
                "securityContext.appArmorProfile.type: RuntimeDefault",
            )
        )
    return findings
