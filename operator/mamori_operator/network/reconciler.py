"""Make each namespace's managed NetworkPolicies match the policies that select it.

Level-based: whatever triggered it (a policy, a namespace label, someone deleting one of ours),
:meth:`NetworkPolicyReconciler.reconcile_namespace` compares the desired objects with the managed
ones the watch has shown, applies what differs with server-side apply, and deletes managed
objects that no policy wants any more. A NetworkPolicy without the managed-by label is never seen
here, so never touched. Writes happen only on a difference, and a no-op apply does not change
the object, so the operator cannot chase its own events. A namespace whose write failed (an
admission webhook refusing it, the API server away) is retried with exponential backoff by
:class:`~mamori_operator.network.requeue.Requeue`, not left for the next full resync.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mamori.logs import log_context
from mamori.policy import API_VERSION, KIND
from mamori_operator.api.events import EventRecorder, ObjectRef
from mamori_operator.api.kube import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Kube,
    KubeError,
    network_policy_path,
)
from mamori_operator.metrics import NETWORK_POLICIES, Metrics
from mamori_operator.network.requeue import Requeue
from mamori_operator.state.cluster import (
    ClusterState,
    NamespaceRecord,
    NetworkPolicyRecord,
    PolicyRecord,
)

logger = logging.getLogger(__name__)
POLICY_LABEL = "mamori.io/policy"
NAME_PREFIX = "mamori-"


def short_name(text: str, limit: int) -> str:
    """Fit a name into ``limit`` characters, keeping it unique with a hash suffix."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[: limit - 11].rstrip('-.')}-{digest}"


def policy_label(policy_name: str) -> str:
    return short_name(policy_name, 63)


def network_policy_name(policy_name: str) -> str:
    return short_name(NAME_PREFIX + policy_name, 253)


def build_manifest(
    record: PolicyRecord, *, namespace: str, spec: Mapping[str, Any]
) -> dict[str, Any]:
    """The full NetworkPolicy object mamori applies for one policy in one namespace.

    The owner reference lets Kubernetes' garbage collector clean up even when the operator is
    not running when the policy is deleted (no finalizer needed).
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(record.name),
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, POLICY_LABEL: policy_label(record.name)},
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": KIND, "name": record.name, "uid": record.uid}
            ],
        },
        "spec": dict(spec),
    }


def desired_network_policies(
    records: Sequence[PolicyRecord], namespace: NamespaceRecord
) -> dict[str, tuple[PolicyRecord, dict[str, Any]]]:
    """Name → (policy, manifest) for every valid policy with a networkPolicy section here."""
    desired: dict[str, tuple[PolicyRecord, dict[str, Any]]] = {}
    for record in records:
        policy = record.policy
        if policy is None or not policy.selects(namespace.name, namespace.labels):
            continue
        section = policy.network_policy
        if section is None:
            continue
        rendered = section.render()
        if rendered is None:
            continue
        manifest = build_manifest(record, namespace=namespace.name, spec=rendered)
        desired[manifest["metadata"]["name"]] = (record, manifest)
    return desired


def record_from_object(body: Mapping[str, Any]) -> NetworkPolicyRecord:
    metadata = body.get("metadata") or {}
    labels = dict(metadata.get("labels") or {})
    spec = dict(body.get("spec") or {})
    return NetworkPolicyRecord(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        policy_label=labels.get(POLICY_LABEL, ""),
        spec=spec,
        labels=labels,
        normalized_spec=normalize(spec),
    )


def matches(
    current: NetworkPolicyRecord, manifest: Mapping[str, Any], *, wanted_spec: Any = None
) -> bool:
    """True when the object already says what we would apply (labels we set, and the spec).

    ``wanted_spec`` is ``normalize(manifest["spec"])`` when the caller has it already (one
    policy renders the same spec for every namespace)."""
    labels = manifest["metadata"]["labels"]
    if any(current.labels.get(key) != value for key, value in labels.items()):
        return False
    have = current.normalized_spec
    if have is None:
        have = normalize(current.spec)
    want = wanted_spec if wanted_spec is not None else normalize(manifest["spec"])
    return bool(have == want)


def normalize(value: Any) -> Any:
    """Drop null and empty-list fields, which the API server omits; keep ``{}`` (it selects all)."""
    if isinstance(value, Mapping):
        return {
            k: normalize(v)
            for k, v in value.items()
            if v is not None and not (isinstance(v, list) and not v)
        }
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class NetworkPolicyCount:
    """For one policy: namespaces that should have its NetworkPolicy, and those where the
    object in the cluster (as last listed or watched) says exactly what it should."""

    desired: int = 0
    in_place: int = 0


def count_network_policies(
    records: Sequence[PolicyRecord],
    namespaces: Sequence[NamespaceRecord],
    actual: Mapping[tuple[str, str], NetworkPolicyRecord],
) -> dict[str, NetworkPolicyCount]:
    """Desired vs in place, per policy name, compared object by object."""
    counts: dict[str, NetworkPolicyCount] = {}
    for record in records:
        policy = record.policy
        section = policy.network_policy if policy is not None else None
        rendered = section.render() if section is not None else None
        if policy is None or rendered is None:
            continue
        desired = in_place = 0
        wanted = normalize(rendered)
        for namespace in namespaces:
            if namespace.terminating or not policy.selects(namespace.name, namespace.labels):
                continue
            desired += 1
            manifest = build_manifest(record, namespace=namespace.name, spec=rendered)
            current = actual.get((namespace.name, manifest["metadata"]["name"]))
            if current is not None and matches(current, manifest, wanted_spec=wanted):
                in_place += 1
        counts[record.name] = NetworkPolicyCount(desired=desired, in_place=in_place)
    return counts


class NetworkPolicyReconciler:
    def __init__(
        self,
        *,
        state: ClusterState,
        kube: Kube,
        events: EventRecorder,
        metrics: Metrics,
        retry_base: float = 0.5,
        retry_limit: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.kube = kube
        self.events = events
        self.metrics = metrics
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._errors: dict[str, dict[str, str]] = {}
        self.retries = Requeue(
            self.reconcile_namespace,
            base=retry_base,
            limit=retry_limit,
            name="mamori-netpol-retries",
            clock=clock,
        )

    # -- entry points --------------------------------------------------------------------------

    def reconcile_all(self) -> None:
        for namespace in self.state.all_namespaces():
            self.reconcile_namespace(namespace.name)

    def reconcile_namespace(self, namespace: str) -> list[str]:
        """Converge one namespace; return the names written (applied or deleted).

        When a write fails, the namespace is requeued with backoff; a full success forgets it.
        """
        with self._lock_for(namespace):
            written, failed = self._reconcile(namespace)
        self.metrics.count_reconcile(NETWORK_POLICIES, failed=failed)
        if failed:
            delay = self.retries.failed(namespace)
            logger.info(
                "NetworkPolicies in %s: retrying in %.1fs",
                namespace,
                delay,
                extra=log_context(namespace=namespace),
            )
        else:
            self.retries.forget(namespace)
        return written

    def counts(self) -> dict[str, NetworkPolicyCount]:
        """Desired vs in place for every policy with a networkPolicy section."""
        with self.state.lock:
            actual = dict(self.state.network_policies)
        return count_network_policies(
            self.state.all_policy_records(), self.state.all_namespaces(), actual
        )

    def on_network_policy(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Watch event for a managed NetworkPolicy: put it right if someone changed it."""
        current = record_from_object(body)
        if event_type == "DELETED":
            self.state.remove_network_policy(current.namespace, current.name)
        else:
            self.state.set_network_policy(current)
        desired = self._desired(current.namespace)
        wanted = desired.get(current.name)
        if wanted is None:
            if event_type != "DELETED":
                self.reconcile_namespace(current.namespace)  # stale: no policy wants it now
            return
        record, manifest = wanted
        if event_type != "DELETED" and matches(current, manifest):
            return
        written = self.reconcile_namespace(current.namespace)
        if current.name in written:
            self.metrics.repairs.inc()
            how = "deleted" if event_type == "DELETED" else "changed"
            verb = "Restored" if event_type == "DELETED" else "Repaired"
            self.events.normal(
                policy_ref(record),
                reason=f"NetworkPolicy{verb}",
                message=(
                    f"NetworkPolicy {current.namespace}/{current.name} was {how} by someone "
                    "else; mamori put it back"
                ),
            )
            uid = str((body.get("metadata") or {}).get("uid") or "")
            self.events.normal(  # on the object itself too: `kubectl describe networkpolicy`
                self._network_policy_ref(current, uid=None if event_type == "DELETED" else uid),
                reason=f"NetworkPolicy{verb}",
                message=(
                    f"this NetworkPolicy was {how} by someone else; mamori put it back as "
                    f"ClusterSecurityPolicy {record.name} wants it"
                ),
            )

    def errors_for(self, policy_name: str) -> dict[str, str]:
        with self._guard:
            return dict(self._errors.get(policy_name, {}))

    def forget_namespace(self, namespace: str) -> None:
        with self._guard:
            for errors in self._errors.values():
                errors.pop(namespace, None)
            self._locks.pop(namespace, None)
        self.retries.forget(namespace)

    # -- internals -----------------------------------------------------------------------------

    def _network_policy_ref(self, current: NetworkPolicyRecord, *, uid: str | None) -> ObjectRef:
        """The NetworkPolicy as ``involvedObject``; a restored one has a new uid: read it."""
        if uid is None:
            try:
                written = self.kube.get(
                    network_policy_path(current.namespace, current.name),
                    resource="networkpolicies",
                )
            except KubeError:
                written = None
            uid = str(((written or {}).get("metadata") or {}).get("uid") or "")
        return ObjectRef(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            current.name,
            uid=uid,
            namespace=current.namespace,
        )

    def _lock_for(self, namespace: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(namespace, threading.Lock())

    def _desired(self, namespace: str) -> dict[str, tuple[PolicyRecord, dict[str, Any]]]:
        record = self.state.namespace(namespace)
        if record is None or record.terminating:
            return {}
        return desired_network_policies(self.state.all_policy_records(), record)

    def _reconcile(self, namespace: str) -> tuple[list[str], bool]:
        """Converge; return (names written, whether any write failed)."""
        where = self.state.namespace(namespace)
        if where is None or where.terminating:
            return [], False  # gone or going: the namespace controller removes what is inside
        records = self.state.all_policy_records()
        broken = {policy_label(r.name) for r in records if r.policy is None}
        desired = self._desired(namespace)
        actual = self.state.network_policies_in(namespace)
        written: list[str] = []
        failed = False
        for name, (record, manifest) in desired.items():
            current = actual.get(name)
            if current is not None and matches(current, manifest):
                self._set_error(record.name, namespace, None)
                continue
            try:
                result = self.kube.apply(
                    network_policy_path(namespace, name),
                    manifest,
                    resource="networkpolicies",
                    force=current is not None,  # ours: take it back; absent: never clobber
                )
            except KubeError as error:
                self._set_error(record.name, namespace, _explain(error, namespace, name))
                logger.warning(
                    "could not apply NetworkPolicy %s/%s: %s",
                    namespace,
                    name,
                    error,
                    extra=log_context(policy=record.name, namespace=namespace, name=name),
                )
                failed = True
                continue
            self.state.set_network_policy(record_from_object(result))
            self._set_error(record.name, namespace, None)
            written.append(name)
            logger.info(
                "applied NetworkPolicy %s/%s for policy %s",
                namespace,
                name,
                record.name,
                extra=log_context(policy=record.name, namespace=namespace, name=name),
            )
        for name, current in actual.items():
            if name in desired or current.policy_label in broken:
                continue  # a policy with a broken spec keeps its protections until fixed
            try:
                self.kube.delete(network_policy_path(namespace, name), resource="networkpolicies")
            except KubeError as error:
                logger.warning(
                    "could not delete NetworkPolicy %s/%s: %s",
                    namespace,
                    name,
                    error,
                    extra=log_context(namespace=namespace, name=name),
                )
                failed = True
                continue
            self.state.remove_network_policy(namespace, name)
            written.append(name)
            logger.info(
                "deleted NetworkPolicy %s/%s (no policy wants it)",
                namespace,
                name,
                extra=log_context(namespace=namespace, name=name),
            )
        wanted_by = {record.name for record, _ in desired.values()}
        with self._guard:
            for policy_name, errors in self._errors.items():
                if policy_name not in wanted_by:
                    errors.pop(namespace, None)
        return written, failed

    def _set_error(self, policy_name: str, namespace: str, message: str | None) -> None:
        with self._guard:
            errors = self._errors.setdefault(policy_name, {})
            if message is None:
                errors.pop(namespace, None)
            else:
                errors[namespace] = message


def policy_ref(record: PolicyRecord) -> ObjectRef:
    return ObjectRef(api_version=API_VERSION, kind=KIND, name=record.name, uid=record.uid)


def _explain(error: KubeError, namespace: str, name: str) -> str:
    if error.status == 409:
        return (
            f"NetworkPolicy {namespace}/{name} exists and is not managed by mamori; "
            "rename or delete it so mamori can manage it"
        )
    if error.status == 403:
        return f"not allowed to write NetworkPolicies in {namespace}: {error.message}"
    return f"{namespace}/{name}: {error}"
