"""What ``why`` was asked about: ``web``, ``deploy/web``, ``deployment.apps/web`` or ``deploy web``.

kubectl's short names and plurals are accepted for every kind the webhook judges; a bare name is
looked up as a Pod, then as a Deployment (the two things people ask about).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
"""A DNS subdomain, as the API server requires of these kinds' names (and safe in a URL)."""


@dataclass(frozen=True, slots=True)
class Kind:
    """A workload kind and where the API serves it."""

    name: str
    group: str
    version: str
    plural: str
    aliases: frozenset[str]

    def path(self, namespace: str, name: str = "") -> str:
        """The REST path of one object (or, without ``name``, of the collection)."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        collection = f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{collection}/{name}" if name else collection


def _kind(name: str, group: str, plural: str, *short: str) -> Kind:
    group_suffixed = {f"{alias}.{group}" for alias in (name.lower(), plural)} if group else set()
    aliases = frozenset({name.lower(), plural, *short, *group_suffixed})
    return Kind(name, group, "v1", plural, aliases)


POD = _kind("Pod", "", "pods", "po")
DEPLOYMENT = _kind("Deployment", "apps", "deployments", "deploy")
KINDS = (
    POD,
    DEPLOYMENT,
    _kind("StatefulSet", "apps", "statefulsets", "sts"),
    _kind("DaemonSet", "apps", "daemonsets", "ds"),
    _kind("ReplicaSet", "apps", "replicasets", "rs"),
    _kind("Job", "batch", "jobs"),
    _kind("CronJob", "batch", "cronjobs", "cj"),
    _kind("ReplicationController", "", "replicationcontrollers", "rc"),
)
BARE_NAME_KINDS = (POD, DEPLOYMENT)
"""What a bare name may be, in the order it is looked up."""


class TargetError(ValueError):
    """A command line ``why`` cannot act on (the object, the namespace, a flag): exit 2."""


@dataclass(frozen=True, slots=True)
class Target:
    """The object asked about; ``kinds`` holds one kind, or the candidates of a bare name."""

    name: str
    kinds: tuple[Kind, ...]

    def describe(self) -> str:
        """How messages name it: ``deployment web`` or ``pod or deployment web``."""
        kinds = " or ".join(kind.name.lower() for kind in self.kinds)
        return f"{kinds} {self.name}"


def parse_target(words: list[str]) -> Target:
    """``["deploy/web"]``, ``["deploy", "web"]`` or ``["web"]`` → a :class:`Target`."""
    if len(words) == 2:
        return Target(_name(words[1]), (kind_named(words[0]),))
    if len(words) != 1:
        raise TargetError("name one object: NAME, KIND/NAME or KIND NAME")
    kind_word, slash, name = words[0].partition("/")
    if not slash:
        return Target(_name(kind_word), BARE_NAME_KINDS)
    return Target(_name(name), (kind_named(kind_word),))


def kind_named(word: str) -> Kind:
    lowered = word.lower()
    for kind in KINDS:
        if lowered in kind.aliases:
            return kind
    known = ", ".join(kind.name.lower() for kind in KINDS)
    raise TargetError(f"{word!r} is not a kind mamori judges (one of: {known})")


def _name(name: str) -> str:
    if not OBJECT_NAME.match(name):
        raise TargetError(f"{name!r} is not an object name (a lower-case DNS subdomain)")
    return name
