"""The pod as rules see it: a spec, its metadata and its containers, with field paths.

Every workload kind is reduced to one :class:`PodContext` by :mod:`mamori.workloads`; rules then
only ever deal with a pod spec and never with Deployments or CronJobs. Paths stay relative to the
object the user wrote, so messages point at the line to change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """One container of any of the three lists, with the path to it."""

    list_name: str
    index: int
    name: str
    spec: Mapping[str, Any]
    path: str

    @property
    def security_context(self) -> Mapping[str, Any]:
        return as_mapping(self.spec.get("securityContext"))

    def field(self, *parts: str) -> str:
        return ".".join((self.path, *parts))


@dataclass(frozen=True, slots=True)
class PodContext:
    """A pod spec to judge, wherever it came from."""

    spec: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    spec_path: str = "spec"
    metadata_path: str = "metadata"

    @property
    def security_context(self) -> Mapping[str, Any]:
        return as_mapping(self.spec.get("securityContext"))

    @property
    def annotations(self) -> Mapping[str, Any]:
        return as_mapping(self.metadata.get("annotations"))

    def field(self, *parts: str) -> str:
        return ".".join((self.spec_path, *parts))

    def containers(self) -> Iterator[ContainerRef]:
        """Yield init, regular and ephemeral containers, in that order."""
        for list_name in CONTAINER_LISTS:
            items = self.spec.get(list_name)
            if not isinstance(items, list):
                continue
            for index, container in enumerate(items):
                spec = as_mapping(container)
                name = spec.get("name")
                yield ContainerRef(
                    list_name=list_name,
                    index=index,
                    name=name if isinstance(name, str) and name else f"{list_name}[{index}]",
                    spec=spec,
                    path=f"{self.spec_path}.{list_name}[{index}]",
                )


def as_mapping(value: object) -> Mapping[str, Any]:
    """Treat a missing or malformed sub-object as empty, so rules never crash on bad input."""
    return value if isinstance(value, Mapping) else EMPTY
