"""Small pieces the Pod Security Standards rules share: scopes, flags, and value rendering.

Most PSS fields can be set on the pod's ``securityContext`` and on each container's, so rules
walk :func:`scopes` (the pod first, then every container) instead of repeating that walk.
Malformed values never raise: helpers here decide whether a value is "absent" or "not the
allowed value", and rules report the latter as a violation (fail closed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mamori.podspec import ContainerRef, PodContext, as_mapping

MAX_SHOWN = 80
MAX_UID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Scope:
    """The pod or one container, seen through its ``securityContext``.

    ``label`` starts messages (``pod`` or ``container "app"``); ``container`` is the name
    reported in findings (None for the pod).
    """

    label: str
    container: str | None
    security_context: Mapping[str, Any]
    path: str

    def field(self, *parts: str) -> str:
        """The full path of a field under this scope's ``securityContext``."""
        return ".".join((self.path, *parts))


def pod_scope(pod: PodContext) -> Scope:
    return Scope(
        label="pod",
        container=None,
        security_context=pod.security_context,
        path=pod.field("securityContext"),
    )


def container_scope(container: ContainerRef) -> Scope:
    return Scope(
        label=f'container "{container.name}"',
        container=container.name,
        security_context=container.security_context,
        path=container.field("securityContext"),
    )


def container_scopes(pod: PodContext) -> Iterator[Scope]:
    """Init, regular and ephemeral containers, in that order."""
    for container in pod.containers():
        yield container_scope(container)


def scopes(pod: PodContext) -> Iterator[Scope]:
    """The pod first, then every container: the stable order of findings."""
    yield pod_scope(pod)
    yield from container_scopes(pod)


def is_on(value: object) -> bool:
    """For flags whose only allowed values are absent and ``false``.

    A non-boolean (``"yes"``, ``1``) is not ``false``, so it counts as on: fail closed.
    """
    return value is not None and value is not False


def is_windows(pod: PodContext) -> bool:
    """``spec.os.name: windows``: PSA exempts such pods from Linux-only restricted checks."""
    return as_mapping(pod.spec.get("os")).get("name") == "windows"


def in_user_namespace(pod: PodContext) -> bool:
    """``spec.hostUsers: false``: root in the pod maps to an unprivileged user on the node."""
    return pod.spec.get("hostUsers") is False


def is_uid(value: object) -> bool:
    """A numeric user ID the API server would accept (``bool`` is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UID


def show(value: object) -> str:
    """Render a value the way the user wrote it in YAML/JSON, shortened for one-line messages."""
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def quote_all(values: list[str] | tuple[str, ...]) -> str:
    """``"a", "b"`` for message lists."""
    return ", ".join(f'"{value}"' for value in values)


def item_name(item: Mapping[str, Any], *, index: int, kind: str) -> str:
    """The ``name`` of a volume or similar list item, or its position when it has none."""
    name = item.get("name")
    return name if isinstance(name, str) and name else f"{kind}[{index}]"
