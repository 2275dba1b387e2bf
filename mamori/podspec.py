"""The pod as rules see it: a spec, its metadata and its containers, with field paths.

Every workload kind is reduced to one :class:`PodContext` by :mod:`mamori.workloads`; rules then
only ever deal with a pod spec and never with Deployments or CronJobs. Paths stay relative to the
object the user wrote, so messages point at the line to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mamori.images import ImageReference, InvalidReference, parse_reference

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Malformed:
    """A part of the pod whose type is not the one the API defines (judged by ``pod-structure``).

    Rules treat such a part as absent so they never crash; recording it here is what makes the
    verdict fail closed: ``containers: "x"`` must be denied, not read as "no containers".
    """

    path: str  # the full field path, as in findings
    expected: str
    value: object = field(compare=False)


@dataclass(frozen=True, slots=True)
class Scope:
    """The pod or one container, seen through its ``securityContext``.

    ``label`` starts messages (``pod`` or ``container "app"``); ``container`` is the name
    reported in findings (None for the pod). Built once per pod: a dozen rules walk them.
    """

    label: str
    container: str | None
    security_context: Mapping[str, Any]
    path: str

    def field(self, *parts: str) -> str:
        """The full path of a field under this scope's ``securityContext``."""
        return ".".join((self.path, *parts))


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """One container of any of the three lists, with the path to it."""

    list_name: str
    index: int
    name: str
    spec: Mapping[str, Any]
    path: str
    parsed_image: ImageReference | InvalidReference | None = None
    scope: Scope = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scope = Scope(
            label=f'container "{self.name}"',
            container=self.name,
            security_context=as_mapping(self.spec.get("securityContext")),
            path=f"{self.path}.securityContext",
        )
        object.__setattr__(self, "scope", scope)

    def image_reference(self) -> ImageReference | None:
        """The parsed image (parsed once per pod); None when it is missing or not a string.

        Raises :class:`InvalidReference` for an image that does not parse, as
        :func:`mamori.images.parse_reference` does.
        """
        if isinstance(self.parsed_image, InvalidReference):
            raise self.parsed_image
        return self.parsed_image

    @property
    def security_context(self) -> Mapping[str, Any]:
        return self.scope.security_context

    def field(self, *parts: str) -> str:
        return ".".join((self.path, *parts))


@dataclass(frozen=True, slots=True)
class PodContext:
    """A pod spec to judge, wherever it came from.

    The container list (and each container's parsed image) is built once at construction:
    every rule walks it, and admission latency is paid on every pod create.
    """

    spec: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    spec_path: str = "spec"
    metadata_path: str = "metadata"
    template_problems: tuple[Malformed, ...] = ()  # found above the spec, by mamori.workloads
    _containers: tuple[ContainerRef, ...] = field(init=False, repr=False, compare=False)
    _scopes: tuple[Scope, ...] = field(init=False, repr=False, compare=False)
    _malformed: tuple[Malformed, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        malformed = list(self.template_problems)
        containers = tuple(self._collect_containers(malformed))
        pod_scope = Scope(
            label="pod",
            container=None,
            security_context=as_mapping(self.spec.get("securityContext")),
            path=self.field("securityContext"),
        )
        object.__setattr__(self, "_containers", containers)
        object.__setattr__(self, "_scopes", (pod_scope, *(c.scope for c in containers)))
        object.__setattr__(self, "_malformed", tuple(malformed))

    @property
    def security_context(self) -> Mapping[str, Any]:
        return self._scopes[0].security_context

    @property
    def annotations(self) -> Mapping[str, Any]:
        return as_mapping(self.metadata.get("annotations"))

    def field(self, *parts: str) -> str:
        return ".".join((self.spec_path, *parts))

    def containers(self) -> tuple[ContainerRef, ...]:
        """Init, regular and ephemeral containers, in that order."""
        return self._containers

    def scopes(self) -> tuple[Scope, ...]:
        """The pod's scope first, then each container's, in :meth:`containers` order."""
        return self._scopes

    def malformed(self) -> tuple[Malformed, ...]:
        """Parts of the template, spec or container lists that are not of their API type."""
        return self._malformed

    def _collect_containers(self, malformed: list[Malformed]) -> list[ContainerRef]:
        """Every container that is an object; anything else in or as a list goes to ``malformed``.

        A non-object item is left out rather than judged as an empty container, so it is
        reported once, as what it is, and not as a container with every field missing.
        """
        found: list[ContainerRef] = []
        for list_name in CONTAINER_LISTS:
            items = self.spec.get(list_name)
            if items is None:
                continue
            if not isinstance(items, list):
                malformed.append(
                    Malformed(self.field(list_name), "a list of container objects", items)
                )
                continue
            for index, container in enumerate(items):
                if not isinstance(container, Mapping):
                    path = f"{self.spec_path}.{list_name}[{index}]"
                    malformed.append(Malformed(path, "a container object", container))
                    continue
                spec = container
                name = spec.get("name")
                found.append(
                    ContainerRef(
                        list_name=list_name,
                        index=index,
                        name=_display_name(name, fallback=f"{list_name}[{index}]"),
                        spec=spec,
                        path=f"{self.spec_path}.{list_name}[{index}]",
                        parsed_image=_parse_image(spec.get("image")),
                    )
                )
        return found


def _display_name(name: object, *, fallback: str) -> str:
    """A container name safe to quote in a one-line message.

    The API server only admits DNS-label names, but mamori also judges raw manifests, where a
    name may hold quotes or control characters; those are escaped, never printed raw.
    """
    if not isinstance(name, str) or not name:
        return fallback
    if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name:
        return name
    return json.dumps(name, ensure_ascii=True)[1:-1]


def _parse_image(image: object) -> ImageReference | InvalidReference | None:
    if not isinstance(image, str) or not image:
        return None
    try:
        return parse_reference(image)
    except InvalidReference as error:
        return error


def as_mapping(value: object) -> Mapping[str, Any]:
    """Treat a missing or malformed sub-object as empty, so rules never crash on bad input."""
    if type(value) is dict:  # the common cases first, without the cost of an ABC check
        return value
    if value is None:
        return EMPTY
    return value if isinstance(value, Mapping) else EMPTY
