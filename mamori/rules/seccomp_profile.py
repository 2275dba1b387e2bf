"""seccomp-profile: seccomp is never turned off; restricted: every container has a profile.

Spec, for ``securityContext.seccompProfile.type`` of the pod and of every init, regular and
ephemeral container:
- baseline: undefined, ``RuntimeDefault`` or ``Localhost``. ``Unconfined`` (or a profile object
  without a valid type) is a violation.
- restricted (``settings.restricted``): additionally every container must end up with
  ``RuntimeDefault`` or ``Localhost``: its own value wins, else the pod's. A container with
  neither is a violation. A bad pod-level value is reported once, on the pod. Windows pods
  (``spec.os.name: windows``) are exempt from this demand, as in pod-security-admission.

Versions, as pod-security-admission: the restricted demand applies from Kubernetes 1.19, and
exempts Windows pods from 1.25; a policy pinned to an older ``podSecurityVersion`` gets the
check of its version.

The legacy annotations ``seccomp.security.alpha.kubernetes.io/pod`` and
``container.seccomp.security.alpha.kubernetes.io/<container>`` do not count as a profile: the
kubelet ignores them since Kubernetes 1.27. Messages say so when such an annotation is present.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import Scope, disallowed_profile
from mamori.rules.registry import Level, RuleSettings, rule


def _check_1_0(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    """Before 1.19: no profile is demanded, Unconfined is still refused."""
    return _judge(pod, demand=False)


def _check_1_19(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    """1.19 to 1.24: restricted demands a profile of Windows pods too."""
    return _judge(pod, demand=settings.restricted)


ALLOWED_TYPES = ("RuntimeDefault", "Localhost")
POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
FIX = "set securityContext.seccompProfile.type: RuntimeDefault (or Localhost)"


@rule(
    rule_id="seccomp-profile",
    level=Level.BASELINE,
    summary="seccomp not Unconfined; restricted: RuntimeDefault or Localhost for every container",
    since=25,
    older={0: _check_1_0, 19: _check_1_19},
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return _judge(pod, demand=settings.restricted and not pod.windows)


def _judge(pod: PodContext, *, demand: bool) -> list[Finding]:
    """``demand``: every container must end up with a profile (restricted)."""
    findings: list[Finding] = []
    pod_level = pod.pod_scope
    pod_profile = pod_level.security_context.get("seccompProfile")
    if not _allowed_at_a_glance(pod_profile) and (finding := _disallowed(pod_level)) is not None:
        findings.append(finding)
    demand_profile = demand and pod_profile is None
    for scope in pod.container_scopes:
        profile = scope.security_context.get("seccompProfile")
        if profile is not None:
            if type(profile) is dict and profile.get("type") in ALLOWED_TYPES:
                continue  # _allowed_at_a_glance, inline: every container of every pod
            if (finding := _disallowed(scope)) is not None:
                findings.append(finding)
        elif demand_profile:
            findings.append(_missing(pod, scope))
    return findings


def _missing(pod: PodContext, scope: Scope) -> Finding:
    ignored = [
        key
        for key in (POD_ANNOTATION, CONTAINER_ANNOTATION_PREFIX + str(scope.container))
        if key in pod.annotations
    ]
    note = ""
    if ignored:
        which = " and ".join(ignored)
        verb = "is" if len(ignored) == 1 else "are"
        note = f" (the annotation {which} {verb} ignored since Kubernetes 1.27)"
    return Finding(
        field=scope.field("seccompProfile", "type"),
        container=scope.container,
        message=f"{scope.label} has no seccomp profile: set "
        f"securityContext.seccompProfile.type: RuntimeDefault (or Localhost) on the pod or "
        f"{scope.label}{note}",
    )


def _allowed_at_a_glance(profile: object) -> bool:
    """Absent, or an object of an allowed type: what :func:`_disallowed` passes, found cheaply."""
    return profile is None or (type(profile) is dict and profile.get("type") in ALLOWED_TYPES)


def _disallowed(scope: Scope) -> Finding | None:
    return disallowed_profile(scope, key="seccompProfile", allowed=ALLOWED_TYPES, fix=FIX)
