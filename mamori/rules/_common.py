"""Small pieces the Pod Security Standards rules share: scopes, flags, and value rendering.

Most PSS fields can be set on the pod's ``securityContext`` and on each container's, so rules
walk :func:`scopes` (the pod first, then every container) instead of repeating that walk; the
scopes themselves are built once per pod by :class:`~mamori.podspec.PodContext`.
Malformed values never raise: helpers here decide whether a value is "absent" or "not the
allowed value", and rules report the latter as a violation (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mamori.findings import Finding, render_value
from mamori.podspec import PodContext
from mamori.podspec import Scope as Scope  # re-exported: the rules import it from here
from mamori.rules.registry import RuleSettings

MAX_SHOWN = 80
MAX_UID = 2**31 - 1


def pod_scope(pod: PodContext) -> Scope:
    return pod.pod_scope


def container_scopes(pod: PodContext) -> tuple[Scope, ...]:
    """Init, regular and ephemeral containers, in that order."""
    return pod.container_scopes


def scopes(pod: PodContext) -> tuple[Scope, ...]:
    """The pod first, then every container: the stable order of findings."""
    return pod.scopes()


def is_on(value: object) -> bool:
    """For flags whose only allowed values are absent and ``false``.

    A non-boolean (``"yes"``, ``1``) is not ``false``, so it counts as on: fail closed.
    """
    return value is not None and value is not False


def is_windows(pod: PodContext) -> bool:
    """``spec.os.name: windows``: PSA exempts such pods from Linux-only restricted checks."""
    return pod.windows


def in_user_namespace(pod: PodContext) -> bool:
    """``spec.hostUsers: false``: root in the pod maps to an unprivileged user on the node."""
    return pod.user_namespace


def is_uid(value: object) -> bool:
    """A numeric user ID the API server would accept (``bool`` is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UID


def show(value: object) -> str:
    """Render a value the way the user wrote it in YAML/JSON, shortened for one-line messages.

    The work is bounded by ``MAX_SHOWN``, not by the value (an alias bomb, a deep nest).
    """
    return render_value(value, limit=MAX_SHOWN)


def quote_all(values: list[str] | tuple[str, ...]) -> str:
    """``"a", "b"`` for message lists."""
    return ", ".join(f'"{value}"' for value in values)


def item_name(item: Mapping[str, Any], *, index: int, kind: str) -> str:
    """The ``name`` of a volume or similar list item, or its position when it has none."""
    name = item.get("name")
    return name if isinstance(name, str) and name else f"{kind}[{index}]"


def disallowed_profile(
    scope: Scope, *, key: str, allowed: tuple[str, ...], fix: str
) -> Finding | None:
    """A ``securityContext.<key>`` (seccompProfile, appArmorProfile) whose type is not allowed.

    Absent is fine here (whether a profile is required is the calling rule's business); a value
    that is not an object, or whose ``type`` is not in ``allowed``, is a finding.
    """
    profile = scope.security_context.get(key)
    if profile is None:
        return None
    if not isinstance(profile, Mapping):
        return Finding(
            field=scope.field(key),
            container=scope.container,
            message=f"{scope.label} securityContext.{key} must be an object, got "
            f"{show(profile)}; {fix}",
        )
    profile_type = profile.get("type")
    if profile_type in allowed:
        return None
    return Finding(
        field=scope.field(key, "type"),
        container=scope.container,
        message=f"{scope.label} must not set securityContext.{key}.type to "
        f"{show(profile_type)}; {fix}",
    )


USER_NAMESPACES_EXEMPT = 35
"""From Kubernetes 1.35 (pod-security-admission) a pod in its own user namespace
(``spec.hostUsers: false``) is exempt from the run-as-root rules: UID 0 in the pod maps to an
unprivileged user on the node."""


class every_pod:
    """The variant before :data:`USER_NAMESPACES_EXEMPT`: a user namespace is no exception.

    A class rather than a closure, so that a compiled policy still pickles; a plain slotted
    class rather than a dataclass, so that `mamori check` does not generate methods at start.
    """

    __slots__ = ("judge",)

    judge: Callable[[PodContext], list[Finding]]

    def __init__(self, judge: Callable[[PodContext], list[Finding]]) -> None:
        object.__setattr__(self, "judge", judge)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"every_pod is immutable (field {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"every_pod is immutable (field {name!r})")

    def __reduce__(self) -> tuple[type[every_pod], tuple[Callable[[PodContext], list[Finding]]]]:
        return (every_pod, (self.judge,))

    def __call__(self, pod: PodContext, settings: RuleSettings) -> list[Finding]:
        return self.judge(pod)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, every_pod) and other.judge == self.judge

    def __hash__(self) -> int:
        return hash(self.judge)

    def __repr__(self) -> str:
        return f"every_pod(judge={self.judge!r})"
