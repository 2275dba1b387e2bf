"""The pod as rules see it: a spec, its metadata and its containers, with field paths.

Every workload kind is reduced to one :class:`PodContext` by :mod:`mamori.workloads`; rules then
only ever deal with a pod spec and never with Deployments or CronJobs. Paths stay relative to the
object the user wrote, so messages point at the line to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from mamori.images import ImageReference, InvalidReference, parse_reference

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
SC_SUFFIX = ".securityContext"
EMPTY: Mapping[str, Any] = {}


class Malformed:
    """A part of the pod whose type is not the one the API defines (judged by ``pod-structure``).

    Rules treat such a part as absent so they never crash; recording it here is what makes the
    verdict fail closed: ``containers: "x"`` must be denied, not read as "no containers".

    Immutable, and equal when ``path`` and ``expected`` are (``value`` may be unhashable).
    Written out rather than a dataclass, whose generated methods cost every ``mamori check``
    start a millisecond.
    """

    __slots__ = ("expected", "path", "value")
    path: str  # the full field path, as in findings
    expected: str
    value: object

    def __init__(self, path: str, expected: str, value: object) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "expected", expected)
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Malformed is immutable (field {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Malformed is immutable (field {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Malformed):
            return NotImplemented
        return (self.path, self.expected) == (other.path, other.expected)

    def __hash__(self) -> int:
        return hash((self.path, self.expected))

    def __reduce__(self) -> tuple[type[Malformed], tuple[str, str, object]]:
        return Malformed, (self.path, self.expected, self.value)

    def __repr__(self) -> str:
        return f"Malformed(path={self.path!r}, expected={self.expected!r}, value={self.value!r})"


class Scope(NamedTuple):
    """The pod or one container, seen through its ``securityContext``.

    ``label`` starts messages (``pod`` or ``container "app"``); ``container`` is the name
    reported in findings (None for the pod). Built once per pod: a dozen rules walk them.
    (A named tuple: immutable like a frozen dataclass, built in a fifth of the time, and five
    are built for every pod admitted.)
    """

    container: str | None
    security_context: Mapping[str, Any]
    path: str

    @property
    def label(self) -> str:
        """How messages name this scope (built when a message needs it, not per pod)."""
        return "pod" if self.container is None else f'container "{self.container}"'

    def field(self, *parts: str) -> str:
        """The full path of a field under this scope's ``securityContext``."""
        return ".".join((self.path, *parts))


class ContainerRef(NamedTuple):
    """One container of any of the three lists, with the path to it, its scope and its image.

    Built by :class:`PodContext`, once per container per pod.
    """

    list_name: str
    position: int  # in its list (``index`` would shadow the tuple method)
    name: str
    spec: Mapping[str, Any]
    path: str
    scope: Scope
    parsed_image: ImageReference | InvalidReference | None = None

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


ParsedImage = tuple[ContainerRef, str, ImageReference]


class _PodParts(NamedTuple):
    """The fields of :class:`PodContext`: what it is built from, then what is derived from it."""

    spec: Mapping[str, Any]
    metadata: Mapping[str, Any]
    spec_path: str
    metadata_path: str
    template_problems: tuple[Malformed, ...]  # found above the spec, by mamori.workloads
    container_refs: tuple[ContainerRef, ...]
    all_scopes: tuple[Scope, ...]
    pod_scope: Scope
    """The pod's own ``securityContext``."""
    container_scopes: tuple[Scope, ...]
    """Each container's scope, in :meth:`PodContext.containers` order (the pod's not included)."""
    malformed_parts: tuple[Malformed, ...]
    images: tuple[ParsedImage, ...]
    images_all_parsed: bool
    """Every container has an image that parses: nothing for ``image-reference`` to report."""
    windows: bool
    """``spec.os.name: windows``: PSA exempts such pods from Linux-only restricted checks."""
    user_namespace: bool
    """``spec.hostUsers: false``: root in the pod maps to an unprivileged user on the node."""


class PodContext(_PodParts):
    """A pod spec to judge, wherever it came from.

    The container list (and each container's parsed image) is built once at construction:
    every rule walks it, and admission latency is paid on every pod create. Immutable; a named
    tuple rather than a frozen dataclass, whose fourteen ``object.__setattr__`` calls cost about
    a microsecond per pod.
    """

    __slots__ = ()

    def __new__(
        cls,
        spec: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        spec_path: str = "spec",
        metadata_path: str = "metadata",
        template_problems: tuple[Malformed, ...] = (),
    ) -> PodContext:
        malformed = list(template_problems)
        images: list[ParsedImage] = []
        scopes: list[Scope] = []
        containers = tuple(_collect_containers(spec, spec_path, malformed, images, scopes))
        pod_scope = Scope(None, as_mapping(spec.get("securityContext")), spec_path + SC_SUFFIX)
        container_scopes = tuple(scopes)
        return super().__new__(
            cls,
            spec,
            {} if metadata is None else metadata,
            spec_path,
            metadata_path,
            template_problems,
            containers,
            (pod_scope, *container_scopes),
            pod_scope,
            container_scopes,
            tuple(malformed),
            tuple(images),
            len(images) == len(containers),
            as_mapping(spec.get("os")).get("name") == "windows",
            spec.get("hostUsers") is False,
        )

    def __getnewargs__(self) -> tuple[Any, ...]:
        """What copy and pickle rebuild it from: the five arguments, not the derived parts."""
        return (
            self.spec,
            self.metadata,
            self.spec_path,
            self.metadata_path,
            self.template_problems,
        )

    def __eq__(self, other: object) -> bool:
        """Equal when built from equal arguments (as the frozen dataclass it replaces was)."""
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, PodContext)
        return self.__getnewargs__() == other.__getnewargs__()

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self.__getnewargs__())

    def __repr__(self) -> str:
        return (
            f"PodContext(spec={self.spec!r}, metadata={self.metadata!r}, "
            f"spec_path={self.spec_path!r}, metadata_path={self.metadata_path!r}, "
            f"template_problems={self.template_problems!r})"
        )

    @property
    def security_context(self) -> Mapping[str, Any]:
        return self.pod_scope.security_context

    @property
    def annotations(self) -> Mapping[str, Any]:
        return as_mapping(self.metadata.get("annotations"))

    def field(self, *parts: str) -> str:
        return ".".join((self.spec_path, *parts))

    def containers(self) -> tuple[ContainerRef, ...]:
        """Init, regular and ephemeral containers, in that order."""
        return self.container_refs

    def scopes(self) -> tuple[Scope, ...]:
        """The pod's scope first, then each container's, in :meth:`containers` order."""
        return self.all_scopes

    def parsed_images(self) -> tuple[ParsedImage, ...]:
        """Each container whose image parses, with the image as written and as parsed."""
        return self.images

    def malformed(self) -> tuple[Malformed, ...]:
        """Parts of the template, spec or container lists that are not of their API type."""
        return self.malformed_parts


def _collect_containers(
    spec: Mapping[str, Any],
    spec_path: str,
    malformed: list[Malformed],
    images: list[ParsedImage],
    scopes: list[Scope],
) -> list[ContainerRef]:
    """Every container that is an object; anything else in or as a list goes to ``malformed``.

    A non-object item is left out rather than judged as an empty container, so it is reported
    once, as what it is, and not as a container with every field missing. Each image is parsed
    here, once for every rule; those that parse also go to ``images``, and each container's
    scope to ``scopes``.
    """
    found: list[ContainerRef] = []
    for list_name in CONTAINER_LISTS:
        items = spec.get(list_name)
        if items is None:
            continue
        if not isinstance(items, list):
            where = f"{spec_path}.{list_name}"
            malformed.append(Malformed(where, "a list of container objects", items))
            continue
        for index, container in enumerate(items):
            path = f"{spec_path}.{list_name}[{index}]"
            if type(container) is not dict and not isinstance(container, Mapping):
                malformed.append(Malformed(path, "a container object", container))
                continue
            name = _display_name(container.get("name"), list_name=list_name, index=index)
            security_context = container.get("securityContext")
            if type(security_context) is not dict:
                security_context = as_mapping(security_context)
            scope = Scope(name, security_context, path + SC_SUFFIX)
            image = container.get("image")
            parsed = _parse_image(image)
            ref = ContainerRef(list_name, index, name, container, path, scope, parsed)
            found.append(ref)
            scopes.append(scope)
            if type(parsed) is ImageReference and isinstance(image, str):
                images.append((ref, image, parsed))
    return found


def _display_name(name: object, *, list_name: str, index: int) -> str:
    """A container name safe to quote in a one-line message (its position when it has none).

    The API server only admits DNS-label names, but mamori also judges raw manifests, where a
    name may hold quotes or control characters; those are escaped, never printed raw.
    """
    if not isinstance(name, str) or not name:
        return f"{list_name}[{index}]"
    if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name:
        return name
    return json.dumps(name, ensure_ascii=True)[1:-1]


def _parse_image(image: object) -> ImageReference | InvalidReference | None:
    if not isinstance(image, str) or not image:
        return None
    try:
        return parse_reference(image)  # one regex match for the common shapes
    except InvalidReference as error:
        return error


def as_mapping(value: object) -> Mapping[str, Any]:
    """Treat a missing or malformed sub-object as empty, so rules never crash on bad input."""
    if type(value) is dict:  # the common cases first, without the cost of an ABC check
        return value
    if value is None:
        return EMPTY
    return value if isinstance(value, Mapping) else EMPTY
