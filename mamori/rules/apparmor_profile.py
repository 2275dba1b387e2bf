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

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import disallowed_profile, scopes, show
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
    findings = [
        finding
        for scope in scopes(pod)
        if (
            finding := disallowed_profile(
                scope, key="appArmorProfile", allowed=ALLOWED_TYPES, fix=FIX
            )
        )
        is not None
    ]
    findings.extend(_annotations(pod))
    return findings


def _annotations(pod: PodContext) -> list[Finding]:
    findings: list[Finding] = []
    for key, value in sorted(
        (key, value)
        for key, value in pod.annotations.items()
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
