"""Leader election with a coordination.k8s.io Lease: two replicas never act at the same time.

The same protocol as client-go's leaderelection: the holder renews ``renewTime`` every
``lease_seconds / 3``; a standby takes over only after it has watched the record stay unchanged
for a full ``lease_seconds`` by its *own* clock (so clock skew between nodes does not matter).
Writes carry the resourceVersion they read, so two candidates racing for an expired Lease cannot
both win. A leader that cannot renew in time stops acting (the process exits and restarts as a
standby); one that shuts down cleanly releases the Lease so a standby takes over at once.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from mamori.operator.kube import Kube, KubeError

logger = logging.getLogger(__name__)


def lease_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return base if name is None else f"{base}/{name}"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._last_renewal = 0.0

    @property
    def duration(self) -> int:
        return max(1, round(self.lease_seconds))

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds the Lease afterwards."""
        try:
            lease = self.kube.get(lease_path(self.namespace, self.name), resource="leases")
            if lease is None:
                self._create()
            else:
                spec = lease.get("spec") or {}
                holder = str(spec.get("holderIdentity") or "")
                if holder != self.identity and not self._expired(holder, spec):
                    return False
                self._take(lease, taking_over=holder != self.identity)
        except KubeError as error:
            if error.status not in (404, 409):
                logger.warning("leader election: %s", error)
            return False
        self._last_renewal = self.clock()
        return True

    def _expired(self, holder: str, spec: dict[str, Any]) -> bool:
        if not holder:
            return True  # released
        observed = (holder, str(spec.get("renewTime") or ""))
        now = self.clock()
        if observed != self._observed:
            self._observed, self._observed_at = observed, now
            return False
        duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
        return now - self._observed_at > duration

    def _create(self) -> None:
        now = _now()
        self.kube.create(
            lease_path(self.namespace),
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": self.duration,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            },
            resource="leases",
        )
        logger.info("leader election: %s created the Lease and leads", self.identity)

    def _take(self, lease: dict[str, Any], *, taking_over: bool) -> None:
        spec = dict(lease.get("spec") or {})
        now = _now()
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration, renewTime=now)
        if taking_over:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        self.kube.replace(
            lease_path(self.namespace, self.name), _with_spec(lease, spec), resource="leases"
        )
        if taking_over:
            logger.info("leader election: %s took over the Lease", self.identity)

    def release(self) -> None:
        """Give the Lease up so a standby need not wait for it to expire."""
        try:
            lease = self.kube.get(lease_path(self.namespace, self.name), resource="leases")
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = dict(lease["spec"])
            spec.update(holderIdentity=None, renewTime=_now(), leaseDurationSeconds=1)
            self.kube.replace(
                lease_path(self.namespace, self.name), _with_spec(lease, spec), resource="leases"
            )
            logger.info("leader election: %s released the Lease", self.identity)
        except KubeError as error:
            logger.warning("leader election: could not release the Lease: %s", error)

    def wait_for_leadership(self, stop: threading.Event) -> bool:
        """Block until leading (True) or until ``stop`` is set (False)."""
        retry = max(0.2, self.lease_seconds / 5)
        while not stop.is_set():
            if self.try_acquire_or_renew():
                return True
            stop.wait(retry)
        return False

    def keep_renewing(self, stop: threading.Event, lost: Callable[[], None]) -> threading.Thread:
        """Renew in the background; call ``lost`` if the renew deadline passes."""
        deadline = self.lease_seconds * 2 / 3

        def renew() -> None:
            while not stop.wait(self.lease_seconds / 3):
                if self.try_acquire_or_renew():
                    continue
                if self.clock() - self._last_renewal > deadline:
                    logger.error("leader election: lost the Lease; stopping")
                    lost()
                    return

        thread = threading.Thread(target=renew, name="mamori-lease", daemon=True)
        thread.start()
        return thread


def _with_spec(lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The Lease to write back: its resourceVersion makes the write conditional."""
    metadata = {k: v for k, v in (lease.get("metadata") or {}).items() if k != "managedFields"}
    return {**lease, "metadata": metadata, "spec": spec}
