"""What the operator knows about the cluster, kept current by watch events.

kopf's handlers write here; reconcilers and the status loop read here instead of asking the API
server. It is a *view*, not a ledger of events: a re-list from the API server
(:mod:`~mamori_operator.state.relist`)
 replaces it whole with :meth:`ClusterState.replace_listed`, so an
object deleted while the watch was away (no DELETED event ever comes) disappears here too. The
whole object lives on kopf's ``memo`` (one per operator run), so restarts start clean and tests
can run operators side by side. A single lock guards it: every critical section is a few dict
operations, never an API call.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mamori.policy import Policy
from mamori.policy.image_scan import ImageScanSpec, merge_image_scans
from mamori_operator.scanning.model import ImageRef, ScanReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A ClusterSecurityPolicy as last seen.

    ``policy`` is what is *in effect*: the current spec when it is valid, else the last valid
    spec of the same object (generation ``valid_generation``), else None. ``error`` is the
    parser's message while the current spec is invalid. One last-known-good rule, like the
    webhook's: a typo in an edit never switches protections off (NetworkPolicies, audit and
    scan settings all keep using the last valid spec); the status says the spec is invalid.
    """

    name: str
    uid: str
    generation: int
    policy: Policy | None
    error: str | None
    status: Mapping[str, Any]
    valid_generation: int = 0


@dataclass(frozen=True, slots=True)
class NamespaceRecord:
    name: str
    labels: Mapping[str, str]
    terminating: bool = False


@dataclass(frozen=True, slots=True)
class NetworkPolicyRecord:
    """A NetworkPolicy carrying the managed-by label (the only ones the operator sees)."""

    namespace: str
    name: str
    policy_label: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str]
    normalized_spec: Any = field(default=None, compare=False, repr=False)
    """``spec`` as compared with what mamori would apply (computed once, when the object is
    read: the status pass compares every namespace's object on every refresh)."""


@dataclass(frozen=True, slots=True)
class PodRecord:
    """A pod reduced to what audit and scanning need.

    ``encoded_body`` keeps apiVersion, kind, metadata (less the operator's own scan
    annotations, which ``annotations`` holds) and spec as compressed compact JSON, so that the
    audit can re-judge the pod when a policy changes, without a GET. Pods are the one
    kind the operator keeps by the tens of thousands: so kept, a pod's spec takes about a
    twentieth of what its dicts would, and it is decoded (:attr:`body`) only when the pod is
    judged again.

    ``key`` is (namespace, name), made once: the view's dict, its indexes, the work queue and
    the audit all hold this one tuple (the view hands a replaced pod's tuple on to its new
    record), not one copy each.
    """

    namespace: str
    name: str
    uid: str
    resource_version: str
    owner_kind: str
    owner_name: str
    images: tuple[ImageRef, ...]
    annotations: Mapping[str, str]
    encoded_body: bytes
    key: tuple[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.namespace, self.name))

    def _share_key(self, key: tuple[str, str]) -> PodRecord:
        """Take over an equal key tuple (of the record this one replaces); only before the
        record is stored anywhere."""
        if key == self.key:
            object.__setattr__(self, "key", key)
        return self

    @property
    def body(self) -> dict[str, Any]:
        """apiVersion, kind, metadata and spec, decoded afresh (the caller's to keep)."""
        inflate = zlib.decompressobj(zdict=POD_DICTIONARY)
        decoded: dict[str, Any] = json.loads(inflate.decompress(self.encoded_body))
        return decoded


POD_DICTIONARY = json.dumps(
    {
        "metadata": {
            "labels": {"app.kubernetes.io/name": "", "app.kubernetes.io/instance": ""},
            "annotations": {"kubectl.kubernetes.io/default-container": ""},
        },
        "spec": {
            "volumes": [
                {
                    "name": "kube-api-access-",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                },
                {"name": "config", "configMap": {"name": "", "defaultMode": 420}},
                {"name": "data", "emptyDir": {}},
            ],
            "initContainers": [],
            "containers": [
                {
                    "name": "app",
                    "image": "",
                    "command": [],
                    "args": [],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {
                            "name": "POD_NAME",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                            },
                        }
                    ],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "512Mi"},
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                    },
                    "volumeMounts": [
                        {
                            "name": "kube-api-access-",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "initialDelaySeconds": 10,
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {
                        "capabilities": {"drop": ["ALL"]},
                        "privileged": False,
                        "runAsUser": 1000,
                        "runAsNonRoot": True,
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": "",
            "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
            "affinity": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "apiVersion": "v1",
        "kind": "Pod",
    },
    separators=(",", ":"),
).encode()
"""zlib's preset dictionary for pod bodies: the field names and defaulted values that the API
server writes into nearly every pod (probes, tolerations, the service-account volume, security
contexts). Each record then stores only what differs, about half the bytes of compressing each
pod on its own. Any text works as a dictionary (it only has to be the same for compressing and
decompressing, within one process); this one is a typical pod as served."""


def encode_body(body: Mapping[str, Any]) -> bytes:
    """What a :class:`PodRecord` keeps of a pod's body: compact JSON, compressed at the fastest
    level against :data:`POD_DICTIONARY` (pod specs repeat the same keys and defaults)."""
    deflate = zlib.compressobj(1, zdict=POD_DICTIONARY)
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return deflate.compress(text) + deflate.flush()


@dataclass(frozen=True, slots=True)
class ImageScanRecord:
    """An ImageScan object: ``managed`` when mamori wrote it, else a CI pipeline did."""

    name: str
    managed: bool
    spec: Mapping[str, Any]
    report: ScanReport | None


class Handled:
    """What the event handlers last acted on, apart from what the indexes last stored.

    The start-up prime fills :class:`ClusterState` from the API before kopf watches anything
    (``state/relist.py``); the event handlers then need their own memory to tell "this changed
    since I last fanned it out" from "the view already has it". ``synced`` is set when the prime
    is done: from then on the state is complete, and the pod feed and the housekeeper may act.

    ``relist_wanted`` is set when the view may have missed something: kopf re-listed a resource
    (its watch restarted after 410 Gone, and it delivers every listed object again as an event
    of type None, but never says which objects vanished) or the API server was unreachable.
    The housekeeper answers it with a full re-list from the API (see :mod:`relist`).
    """

    def __init__(self) -> None:
        self.synced = threading.Event()
        self.relist_wanted = threading.Event()
        self._seen: dict[tuple[str, str], object] = {}
        self._observed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def observe(self, kind: str, uid: str, event_type: str | None) -> bool:
        """Note a watch event; True (and ``relist_wanted`` set) when it shows a re-list.

        A listing event (type None) for an object this run has already had an event for can
        only come from kopf listing the resource again: its watch restarted, and events may
        have been lost in between.
        """
        key = (kind, uid)
        with self._lock:
            if event_type == "DELETED":
                self._observed.discard(key)
                return False
            relisted = event_type is None and key in self._observed
            self._observed.add(key)
        if relisted and not self.relist_wanted.is_set():
            logger.info("kopf re-listed %s (its watch restarted): re-listing everything", kind)
        if relisted:
            self.relist_wanted.set()
        return relisted

    def changed(self, kind: str, name: str, version: object) -> bool:
        """Record ``version`` for (kind, name); True when it differs from the last one."""
        with self._lock:
            key = (kind, name)
            if self._seen.get(key, _NOTHING) == version:
                return False
            self._seen[key] = version
            return True

    def forget(self, kind: str, name: str) -> None:
        with self._lock:
            self._seen.pop((kind, name), None)


_NOTHING = object()


def with_last_known_good(record: PolicyRecord, old: PolicyRecord | None) -> PolicyRecord:
    """``record`` with the spec in effect: its own when valid, else ``old``'s last valid one."""
    if record.policy is not None:
        if record.valid_generation == record.generation:
            return record
        return replace(record, valid_generation=record.generation)
    if old is None or old.uid != record.uid or old.policy is None:
        return record  # never valid (as far as this run knows): nothing to fall back on
    return replace(record, policy=old.policy, valid_generation=old.valid_generation)


@dataclass(frozen=True, slots=True)
class ListedObjects:
    """What one re-list read from the API server: the whole truth for each kind."""

    policies: Sequence[PolicyRecord]
    namespaces: Sequence[NamespaceRecord]
    network_policies: Sequence[NetworkPolicyRecord]
    pods: Sequence[PodRecord] | None
    """None: pods were not listed here (the pod feed lists them itself, page by page)."""
    image_scans: Mapping[str, ImageScanRecord]


@dataclass(frozen=True, slots=True)
class RelistChanges:
    """What a re-list found different from the view it replaced."""

    policies: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    network_policies: frozenset[tuple[str, str]] = frozenset()
    pods: frozenset[tuple[str, str]] = frozenset()
    image_scans: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(
            self.policies
            or self.namespaces
            or self.network_policies
            or self.pods
            or self.image_scans
        )


@dataclass
class ClusterState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    policy_records: dict[str, PolicyRecord] = field(default_factory=dict)
    namespaces: dict[str, NamespaceRecord] = field(default_factory=dict)
    network_policies: dict[tuple[str, str], NetworkPolicyRecord] = field(default_factory=dict)
    network_policy_names: dict[str, set[str]] = field(default_factory=dict)
    """Names of the managed NetworkPolicies by namespace (a namespace's look-up must not walk
    every namespace's: thousands of namespaces each reconciled at a cold start)."""
    pods: dict[tuple[str, str], PodRecord] = field(default_factory=dict)
    pods_by_digest: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    pods_by_namespace: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    image_scans: dict[str, ImageScanRecord] = field(default_factory=dict)
    vulnerability_reports: dict[tuple[str, str, str, str], ScanReport] = field(default_factory=dict)
    policies_version: int = 0
    # keys that watch events wrote while a re-list was reading the API (newer than the list)
    _touched: set[tuple[str, object]] | None = None

    # -- re-list: the API's answer replaces the view -------------------------------------------

    def begin_relist(self) -> None:
        """Start noting keys the watch writes, so that :meth:`replace_listed` keeps them."""
        with self.lock:
            self._touched = set()

    def abandon_relist(self) -> None:
        with self.lock:
            self._touched = None

    def replace_listed(self, listed: ListedObjects) -> RelistChanges:
        """Make the view what the API listed, except keys a watch event wrote since
        :meth:`begin_relist` (a later event; the watch delivers everything after it in order).

        Objects missing from the list are gone, whether or not a DELETED event ever came.
        """
        with self.lock:
            touched = self._touched or set()
            self._touched = None
            policies = self._replace_policies(listed.policies, touched)
            namespaces = _replace(
                self.namespaces, {n.name: n for n in listed.namespaces}, touched, "namespace"
            )
            network = _replace(
                self.network_policies,
                {(n.namespace, n.name): n for n in listed.network_policies},
                touched,
                "networkpolicy",
            )
            if network:
                self.network_policy_names = {}
                for namespace, name in self.network_policies:
                    self.network_policy_names.setdefault(namespace, set()).add(name)
            pods: set[Any] = set()
            if listed.pods is not None:
                pods = _replace(self.pods, {p.key: p for p in listed.pods}, touched, "pod")
                self.pods_by_digest, self.pods_by_namespace = {}, {}
                for pod in self.pods.values():
                    self._index(pod)
            scans = _replace(self.image_scans, dict(listed.image_scans), touched, "imagescan")
            if namespaces:
                self.policies_version += 1  # audits depend on namespace labels too
            return RelistChanges(
                policies=frozenset(policies),
                namespaces=frozenset(namespaces),
                network_policies=frozenset(network),
                pods=frozenset(pods),
                image_scans=frozenset(scans),
            )

    def _replace_policies(
        self, records: Sequence[PolicyRecord], touched: set[tuple[str, object]]
    ) -> set[str]:
        changed: set[str] = set()
        listed = {r.name: r for r in records}
        for name in list(self.policy_records):
            if name not in listed and ("policy", name) not in touched:
                del self.policy_records[name]
                changed.add(name)
        for name, record in listed.items():
            if ("policy", name) in touched:
                continue
            if self._store_policy(record):
                changed.add(name)
        if changed:
            self.policies_version += 1
        return changed

    def _touch(self, kind: str, key: object) -> None:
        if self._touched is not None:
            self._touched.add((kind, key))

    # -- policies ------------------------------------------------------------------------------

    def set_policy(self, record: PolicyRecord) -> bool:
        """Store a policy (keeping its last valid spec in effect); True when what it means
        changed (not only its status)."""
        with self.lock:
            self._touch("policy", record.name)
            return self._store_policy(record)

    def remove_policy(self, name: str) -> None:
        with self.lock:
            self._touch("policy", name)
            if self.policy_records.pop(name, None) is not None:
                self.policies_version += 1

    def _store_policy(self, record: PolicyRecord) -> bool:
        old = self.policy_records.get(record.name)
        record = with_last_known_good(record, old)
        self.policy_records[record.name] = record
        changed = old is None or (old.policy, old.error, old.uid) != (
            record.policy,
            record.error,
            record.uid,
        )
        if changed:
            self.policies_version += 1
        return changed

    def policies(self) -> list[Policy]:
        """Valid policies, sorted by name (the order every merge uses)."""
        with self.lock:
            records = sorted(self.policy_records.values(), key=lambda r: r.name)
        return [r.policy for r in records if r.policy is not None]

    def policy_record(self, name: str) -> PolicyRecord | None:
        with self.lock:
            return self.policy_records.get(name)

    def all_policy_records(self) -> list[PolicyRecord]:
        with self.lock:
            return sorted(self.policy_records.values(), key=lambda r: r.name)

    def set_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        with self.lock:
            old = self.policy_records.get(name)
            if old is not None:
                self.policy_records[name] = PolicyRecord(
                    name=old.name,
                    uid=old.uid,
                    generation=old.generation,
                    policy=old.policy,
                    error=old.error,
                    status=status,
                    valid_generation=old.valid_generation,
                )

    # -- namespaces ----------------------------------------------------------------------------

    def set_namespace(self, record: NamespaceRecord) -> NamespaceRecord | None:
        with self.lock:
            self._touch("namespace", record.name)
            old = self.namespaces.get(record.name)
            self.namespaces[record.name] = record
            return old

    def remove_namespace(self, name: str) -> None:
        with self.lock:
            self._touch("namespace", name)
            self.namespaces.pop(name, None)

    def namespace(self, name: str) -> NamespaceRecord | None:
        with self.lock:
            return self.namespaces.get(name)

    def all_namespaces(self) -> list[NamespaceRecord]:
        with self.lock:
            return sorted(self.namespaces.values(), key=lambda r: r.name)

    # -- managed NetworkPolicies ---------------------------------------------------------------

    def set_network_policy(self, record: NetworkPolicyRecord) -> NetworkPolicyRecord | None:
        with self.lock:
            key = (record.namespace, record.name)
            self._touch("networkpolicy", key)
            old = self.network_policies.get(key)
            self.network_policies[key] = record
            self.network_policy_names.setdefault(record.namespace, set()).add(record.name)
            return old

    def remove_network_policy(self, namespace: str, name: str) -> NetworkPolicyRecord | None:
        with self.lock:
            self._touch("networkpolicy", (namespace, name))
            names = self.network_policy_names.get(namespace)
            if names is not None:
                names.discard(name)
                if not names:
                    del self.network_policy_names[namespace]
            return self.network_policies.pop((namespace, name), None)

    def network_policies_in(self, namespace: str) -> dict[str, NetworkPolicyRecord]:
        with self.lock:
            names = self.network_policy_names.get(namespace, ())
            return {name: self.network_policies[(namespace, name)] for name in sorted(names)}

    def count_network_policies(self, policy_label: str) -> int:
        with self.lock:
            return sum(1 for r in self.network_policies.values() if r.policy_label == policy_label)

    # -- pods ----------------------------------------------------------------------------------

    def set_pod(self, record: PodRecord) -> PodRecord | None:
        with self.lock:
            self._touch("pod", record.key)
            old = self.pods.get(record.key)
            if old is not None:
                self._unindex(old)
                record = record._share_key(old.key)
            self.pods[record.key] = record
            self._index(record)
            return old

    def offer_listed_pod(self, record: PodRecord) -> bool:
        """Store a pod as a list read it, unless the view already holds this version or a
        newer one (our own patch landed after the list was read); True when stored."""
        with self.lock:
            known = self.pods.get(record.key)
            if known is not None:
                if known == record or _not_older(known.resource_version, record.resource_version):
                    return False
                self._unindex(known)
                record = record._share_key(known.key)
            self.pods[record.key] = record
            self._index(record)
            return True

    def drop_pods_except(self, listed: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """After a pod list: forget pods it did not have (deleted while nobody watched)."""
        with self.lock:
            gone = [key for key in self.pods if key not in listed]
            for key in gone:
                self._unindex(self.pods.pop(key))
            return gone

    def remove_pod(self, namespace: str, name: str) -> PodRecord | None:
        with self.lock:
            self._touch("pod", (namespace, name))
            old = self.pods.pop((namespace, name), None)
            if old is not None:
                self._unindex(old)
            return old

    def update_pod_annotations(
        self,
        key: tuple[str, str],
        annotations: Mapping[str, str | None],
        *,
        resource_version: str,
    ) -> None:
        """Remember what we just wrote (and the version it made), so that an event from
        before our write does not make us write it again."""
        with self.lock:
            old = self.pods.get(key)
            if old is None:
                return
            self._touch("pod", key)
            merged = {k: v for k, v in {**old.annotations, **annotations}.items() if v is not None}
            self.pods[key] = PodRecord(
                namespace=old.namespace,
                name=old.name,
                uid=old.uid,
                resource_version=resource_version or old.resource_version,
                owner_kind=old.owner_kind,
                owner_name=old.owner_name,
                images=old.images,
                annotations=merged,
                encoded_body=old.encoded_body,
            )._share_key(old.key)

    def holds_as_new_as(self, record: PodRecord) -> bool:
        """True when the view already knows everything ``record`` says: an event older than
        our own latest write, or the echo of that write bringing nothing else.

        :meth:`update_pod_annotations` takes only the annotations and the version from a
        patch's answer, so an echo at that version still counts when its body, images or owner
        moved before our write (a first digest, a label). Resource versions are opaque in
        general; etcd's are integers, and only when both are can they be ordered. Anything else
        counts as new.
        """
        with self.lock:
            known = self.pods.get(record.key)
        if known is None or not (
            known.resource_version.isdigit() and record.resource_version.isdigit()
        ):
            return False
        version, known_version = int(record.resource_version), int(known.resource_version)
        if version != known_version:
            return version < known_version
        return (
            known.encoded_body == record.encoded_body
            and known.images == record.images
            and known.uid == record.uid
            and known.owner_kind == record.owner_kind
            and known.owner_name == record.owner_name
        )

    def pod(self, key: tuple[str, str]) -> PodRecord | None:
        with self.lock:
            return self.pods.get(key)

    def all_pods(self) -> list[PodRecord]:
        with self.lock:
            return list(self.pods.values())

    def pods_using(self, digest: str) -> list[tuple[str, str]]:
        with self.lock:
            return sorted(self.pods_by_digest.get(digest, ()))

    def pods_in(self, namespace: str) -> list[tuple[str, str]]:
        with self.lock:
            return sorted(self.pods_by_namespace.get(namespace, ()))

    def pods_owned_by(self, namespace: str, kind: str, name: str) -> list[tuple[str, str]]:
        with self.lock:
            return sorted(
                key
                for key in self.pods_by_namespace.get(namespace, ())
                if self.pods[key].owner_kind == kind and self.pods[key].owner_name == name
            )

    def digests_in_use(self) -> list[str]:
        with self.lock:
            return sorted(d for d, keys in self.pods_by_digest.items() if keys)

    def _index(self, record: PodRecord) -> None:
        """Index a pod by digest and namespace: a new scan report or a namespace change looks
        at its own pods, never walks every pod of the cluster."""
        self.pods_by_namespace.setdefault(record.namespace, set()).add(record.key)
        for image in record.images:
            if image.digest:
                self.pods_by_digest.setdefault(image.digest, set()).add(record.key)

    def _unindex(self, record: PodRecord) -> None:
        in_namespace = self.pods_by_namespace.get(record.namespace)
        if in_namespace is not None:
            in_namespace.discard(record.key)
            if not in_namespace:
                del self.pods_by_namespace[record.namespace]
        for image in record.images:
            if image.digest:
                keys = self.pods_by_digest.get(image.digest)
                if keys is not None:
                    keys.discard(record.key)
                    if not keys:
                        del self.pods_by_digest[image.digest]

    # -- scan sources --------------------------------------------------------------------------

    def set_image_scan(self, digest: str, record: ImageScanRecord) -> None:
        with self.lock:
            self._touch("imagescan", digest)
            self.image_scans[digest] = record

    def remove_image_scan(self, digest: str) -> None:
        with self.lock:
            self._touch("imagescan", digest)
            self.image_scans.pop(digest, None)

    def image_scan(self, digest: str) -> ImageScanRecord | None:
        with self.lock:
            return self.image_scans.get(digest)

    def set_vulnerability_report(
        self, key: tuple[str, str, str, str], report: ScanReport | None
    ) -> None:
        with self.lock:
            if report is None:
                self.vulnerability_reports.pop(key, None)
            else:
                self.vulnerability_reports[key] = report

    def vulnerability_report(self, key: tuple[str, str, str, str]) -> ScanReport | None:
        with self.lock:
            return self.vulnerability_reports.get(key)

    # -- derived -------------------------------------------------------------------------------

    def selecting_policies(self, namespace: str) -> list[Policy]:
        """Valid policies that cover ``namespace`` (sorted by name)."""
        record = self.namespace(namespace)
        labels = record.labels if record is not None else {}
        return [p for p in self.policies() if p.selects(namespace, labels)]

    def scan_settings(self, namespace: str) -> ImageScanSpec | None:
        """The merged ``imageScan`` setting for a namespace, or None when no policy scans it."""
        specs = [
            p.image_scan for p in self.selecting_policies(namespace) if p.image_scan is not None
        ]
        return merge_image_scans(specs)


def _not_older(known: str, listed: str) -> bool:
    """True when resourceVersion ``known`` is at least ``listed`` (etcd's are integers; other
    versions cannot be ordered and count as different)."""
    return known.isdigit() and listed.isdigit() and int(known) >= int(listed)


def _replace(
    view: dict[Any, Any], listed: Mapping[Any, Any], touched: set[tuple[str, object]], kind: str
) -> set[Any]:
    """Replace ``view``'s entries with ``listed`` in place, keeping watch-touched keys;
    return the keys that differ (added, removed or changed)."""
    changed: set[Any] = set()
    for key in list(view):
        if key not in listed and (kind, key) not in touched:
            del view[key]
            changed.add(key)
    for key, value in listed.items():
        if (kind, key) in touched:
            continue
        if view.get(key) != value:
            view[key] = value
            changed.add(key)
    return changed
