"""Where the webhook's policies come from: a file, or the cluster's ClusterSecurityPolicies.

The app asks a source for the current :class:`PolicySet` on every request and never waits: the
set is an immutable value that the source replaces whole (one attribute assignment, atomic for
readers) whenever a policy changes. The cluster source also keeps every Namespace's labels, so
that ``namespaceSelector`` can be honoured without an API call per review, and, while some policy
has ``spec.vulnerabilities``, every ImageScan by digest (:mod:`mamori_webhook.scan_index`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mamori.engine import uses_registry, uses_scans
from mamori.logs import log_context
from mamori.policy import (
    API_GROUP,
    PLURAL,
    VERSION,
    Policy,
    PolicyError,
    load_policy_file,
    parse_policy,
)
from mamori.scans import ScanLookup
from mamori_webhook.scan_index import ScanIndex
from mamori_webhook.watch import Item, ListWatch

LOG = logging.getLogger("mamori_webhook.policies")
SCAN_PLURAL = "imagescans"


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The policies in force at one moment, in a stable order.

    ``scans`` is where the ``image-vulnerabilities`` rule reads scan results; None when no
    policy needs them or the source has none (a policy file), and the rule is then skipped.
    """

    policies: tuple[Policy, ...]
    revision: int = 0
    scans: ScanLookup | None = None
    selects_by_label: bool = field(init=False)
    asks_registry: bool = field(init=False)
    """Some policy judges signatures or resolves tags: reviews then get a registry lookup."""

    def __post_init__(self) -> None:
        selective = any(p.namespace_selector.requirements for p in self.policies)
        object.__setattr__(self, "selects_by_label", selective)
        object.__setattr__(self, "asks_registry", uses_registry(self.policies))


class PolicySource(Protocol):
    """What the app needs from a source of policies."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def current(self) -> PolicySet | None:
        """The set in force, or None until the first complete load."""

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels, or None when unknown."""


class StaticPolicySource:
    """Policies from a YAML file, read once at start (``mamori webhook --policy FILE``).

    A file has no Namespace objects, so selectors see only the ``kubernetes.io/metadata.name``
    label that every namespace carries.
    """

    def __init__(self, policies: Sequence[Policy]) -> None:
        self._set = PolicySet(tuple(policies), revision=1)
        if uses_scans(self._set.policies):
            LOG.warning(
                "a policy file has no ImageScans to read: spec.vulnerabilities "
                "(image-vulnerabilities) is not enforced; serve the cluster's policies instead"
            )

    @classmethod
    def from_file(cls, path: Path) -> StaticPolicySource:
        """Load and validate the file; raises :class:`PolicyError` or :class:`OSError`."""
        return cls(load_policy_file(path))

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def current(self) -> PolicySet | None:
        return self._set

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return None


class ClusterPolicySource:
    """Watch ClusterSecurityPolicies and Namespaces; serve the latest valid set.

    An invalid policy is logged and skipped; if an edit breaks a policy that was valid, its last
    valid version stays in force, so a typo never silently lifts enforcement. The set becomes
    available once both collections have been listed; after that it is always available, even
    while a watch is being re-established. While some policy has ``spec.vulnerabilities`` the
    ImageScans are followed too, and a set that needs them is available once they are listed.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        watch_timeout: int = 300,
        request_timeout: float = 10.0,
    ) -> None:
        import kubernetes.client

        self._core = kubernetes.client.CoreV1Api(api_client)
        custom = kubernetes.client.CustomObjectsApi(api_client)
        self._request_timeout = request_timeout
        self._lock = threading.Lock()
        self._policies: dict[str, Policy] = {}
        self._labels: dict[str, Mapping[str, str]] = {}
        self._revision = 0
        self._set: PolicySet | None = None
        self._policy_watch = ListWatch(
            name=PLURAL,
            list_function=functools.partial(
                custom.list_cluster_custom_object, API_GROUP, VERSION, PLURAL
            ),
            on_replace=self._replace_policies,
            on_event=self._policy_event,
            watch_timeout=watch_timeout,
            request_timeout=request_timeout,
        )
        self._namespace_watch = ListWatch(
            name="namespaces",
            list_function=self._core.list_namespace,
            on_replace=self._replace_namespaces,
            on_event=self._namespace_event,
            watch_timeout=watch_timeout,
            request_timeout=request_timeout,
        )
        self._scans = ScanIndex(
            functools.partial(custom.list_cluster_custom_object, API_GROUP, VERSION, SCAN_PLURAL),
            watch_timeout=watch_timeout,
            request_timeout=request_timeout,
        )
        self._stopped = False

    def start(self) -> None:
        self._policy_watch.start()
        self._namespace_watch.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._policy_watch.stop()
        self._namespace_watch.stop()
        self._scans.stop()

    @property
    def scans(self) -> ScanIndex:
        """The ImageScan index (running only while some policy needs it)."""
        return self._scans

    @property
    def watchers(self) -> tuple[ListWatch, ListWatch]:
        """The two watch loops (policies, namespaces), for health and tests."""
        return self._policy_watch, self._namespace_watch

    def current(self) -> PolicySet | None:
        served = self._set
        if served is None or not self._namespace_watch.synced.is_set():
            return None
        if served.scans is not None and not self._scans.settled:
            return None  # judging images by an unread index would call every image unscanned
        return served

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """Labels from the watched copy; a namespace too new for it is read once directly."""
        labels = self._labels.get(namespace)
        if labels is not None:
            return labels
        try:
            found = self._core.read_namespace(namespace, _request_timeout=self._request_timeout)
        except Exception as error:
            LOG.warning(
                "could not read namespace %s: %s",
                namespace,
                error,
                extra=log_context(namespace=namespace),
            )
            return None
        fresh = dict(found.metadata.labels or {})
        with self._lock:
            return self._labels.setdefault(namespace, fresh)

    # Policies -----------------------------------------------------------------------------

    def _replace_policies(self, items: list[Item]) -> None:
        with self._lock:
            kept: dict[str, Policy] = {}
            for item in items:
                name, policy = self._parse(item)
                if name is None:
                    continue
                if policy is None:
                    policy = self._policies.get(name)
                if policy is not None:
                    kept[name] = policy
            self._policies = kept
            self._publish()

    def _policy_event(self, kind: str, item: Item) -> None:
        with self._lock:
            name = _name(item)
            if name is None:
                return
            if kind == "DELETED":
                self._policies.pop(name, None)
                LOG.info("policy %s deleted", name, extra=log_context(policy=name))
            else:
                _, policy = self._parse(item)
                if policy is None:
                    return
                self._policies[name] = policy
                LOG.info(
                    "policy %s loaded (generation %s)",
                    name,
                    policy.generation,
                    extra=log_context(policy=name),
                )
            self._publish()

    def _parse(self, item: Item) -> tuple[str | None, Policy | None]:
        name = _name(item)
        try:
            return name, parse_policy(item)
        except PolicyError as error:
            kept = " (its last valid version stays in force)" if name in self._policies else ""
            LOG.error(
                "policy %s is invalid and is skipped%s: %s",
                name,
                kept,
                error,
                extra=log_context(policy=name),
            )
            return name, None

    def _publish(self) -> None:
        self._revision += 1
        ordered = tuple(self._policies[name] for name in sorted(self._policies))
        needed = uses_scans(ordered)
        if needed and not self._stopped:
            self._scans.start()
        elif not needed and self._scans.running:
            LOG.info("no policy has spec.vulnerabilities: ImageScans are no longer followed")
            self._scans.stop(timeout=0)
        scans = self._scans if needed else None
        self._set = PolicySet(ordered, revision=self._revision, scans=scans)

    # Namespaces ---------------------------------------------------------------------------

    def _replace_namespaces(self, items: list[Item]) -> None:
        fresh = {}
        for item in items:
            name = _name(item)
            if name is not None:
                fresh[name] = _labels(item)
        with self._lock:
            self._labels = fresh

    def _namespace_event(self, kind: str, item: Item) -> None:
        name = _name(item)
        if name is None:
            return
        with self._lock:
            if kind == "DELETED":
                self._labels.pop(name, None)
            else:
                self._labels[name] = _labels(item)


def _name(item: Item) -> str | None:
    metadata = item.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        return str(metadata["name"])
    return None


def _labels(item: Item) -> Mapping[str, str]:
    metadata = item.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if not isinstance(labels, Mapping):
        return {}
    return {str(k): str(v) for k, v in labels.items()}
