"""Leader election with a coordination.k8s.io Lease: two replicas never act at the same time.

The same protocol as client-go's leaderelection: a standby takes over only after it has watched
the record stay unchanged for a full ``lease_seconds`` by its *own* clock (so clock skew between
nodes does not matter), and writes carry the resourceVersion they read, so two candidates racing
for an expired Lease cannot both win. The holder renews ``lease_seconds / 5`` after its last
renewal and retries every ``lease_seconds / 10``; like client-go's ``renewDeadline``, every
request may only wait for the time left until the deadline, ``2/3 * lease_seconds`` after the
last successful renewal began (and the election's client makes one attempt per call, no retries
of its own). So a leader that cannot renew (a silent network included) gives up by that
deadline, a third of a Lease before any standby may take over; it then stops acting (the
process exits and restarts as a standby). One that shuts down cleanly releases the Lease so a
standby takes over at once.
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from mamori_operator.api.kube import DEFAULT_TIMEOUT, Kube, KubeError

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
        self._renewed_at = -math.inf  # start of the last successful attempt, on self.clock
        kube.disable_client_retries()  # a request must end when its deadline says so

    @property
    def duration(self) -> int:
        """The Lease's whole seconds, never shorter than ours: the margin below depends on it."""
        return max(1, math.ceil(self.lease_seconds))

    @property
    def renew_period(self) -> float:
        """Pause between a successful renewal and the next attempt."""
        return self.lease_seconds / 5

    @property
    def retry_period(self) -> float:
        """Pause between failed attempts."""
        return self.lease_seconds / 10

    @property
    def renew_deadline(self) -> float:
        """How long after the start of its last successful renewal a leader gives up.

        Counted from the *start* of that attempt (its write cannot have reached the API
        server earlier), and well below ``lease_seconds``: a standby may take over one full
        Lease after it saw that write, and the leader must have stopped by then.
        """
        return self.lease_seconds * 2 / 3

    def try_acquire_or_renew(self, *, deadline: float | None = None) -> bool:
        """One attempt; True when this replica holds the Lease afterwards.

        With a ``deadline`` (on this elector's clock) no request waits beyond it.
        """
        started = self.clock()
        try:
            path = lease_path(self.namespace, self.name)
            lease = self.kube.get(path, resource="leases", timeout=self._time_left(deadline))
            if lease is None:
                self._create(timeout=self._time_left(deadline))
            else:
                spec = lease.get("spec") or {}
                holder = str(spec.get("holderIdentity") or "")
                if holder != self.identity and not self._expired(holder, spec):
                    return False
                self._take(
                    lease,
                    taking_over=holder != self.identity,
                    timeout=self._time_left(deadline),
                )
        except KubeError as error:
            if error.status not in (404, 409):
                logger.warning("leader election: %s", error)
            return False
        self._renewed_at = started
        return True

    def _time_left(self, deadline: float | None) -> float:
        if deadline is None:
            return DEFAULT_TIMEOUT
        left = deadline - self.clock()
        if left <= 0:
            raise KubeError(0, "DeadlineExceeded", "no time left before the renew deadline")
        return left

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

    def _create(self, *, timeout: float) -> None:
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
            timeout=timeout,
        )
        logger.info("leader election: %s created the Lease and leads", self.identity)

    def _take(self, lease: dict[str, Any], *, taking_over: bool, timeout: float) -> None:
        spec = dict(lease.get("spec") or {})
        now = _now()
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration, renewTime=now)
        if taking_over:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        self.kube.replace(
            lease_path(self.namespace, self.name),
            _with_spec(lease, spec),
            resource="leases",
            timeout=timeout,
        )
        if taking_over:
            logger.info("leader election: %s took over the Lease", self.identity)

    def release(self) -> None:
        """Give the Lease up so a standby need not wait for it to expire."""
        deadline = self.clock() + self.renew_deadline  # shutting down: do not hang on it
        try:
            path = lease_path(self.namespace, self.name)
            lease = self.kube.get(path, resource="leases", timeout=self._time_left(deadline))
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = dict(lease["spec"])
            spec.update(holderIdentity=None, renewTime=_now(), leaseDurationSeconds=1)
            self.kube.replace(
                path,
                _with_spec(lease, spec),
                resource="leases",
                timeout=self._time_left(deadline),
            )
            logger.info("leader election: %s released the Lease", self.identity)
        except KubeError as error:
            logger.warning("leader election: could not release the Lease: %s", error)

    def wait_for_leadership(self, stop: threading.Event) -> bool:
        """Block until leading (True) or until ``stop`` is set (False)."""
        retry = max(0.2, self.lease_seconds / 5)
        while not stop.is_set():
            # bounded like a renewal: the first renew deadline counts from this attempt
            if self.try_acquire_or_renew(deadline=self.clock() + self.renew_deadline):
                return True
            stop.wait(retry)
        return False

    def keep_renewing(self, stop: threading.Event, lost: Callable[[], None]) -> threading.Thread:
        """Renew in the background; call ``lost`` as soon as the renew deadline passes."""

        def renew() -> None:
            while not stop.wait(self.renew_period):
                deadline = self._renewed_at + self.renew_deadline
                while not self.try_acquire_or_renew(deadline=deadline):
                    left = deadline - self.clock()
                    if left <= 0:
                        logger.error(
                            "leader election: no renewal for %.1fs; stopping", self.renew_deadline
                        )
                        lost()
                        return
                    if stop.wait(min(self.retry_period, left)):
                        return

        thread = threading.Thread(target=renew, name="mamori-lease", daemon=True)
        thread.start()
        return thread


def _with_spec(lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The Lease to write back: its resourceVersion makes the write conditional."""
    metadata = {k: v for k, v in (lease.get("metadata") or {}).items() if k != "managedFields"}
    return {**lease, "metadata": metadata, "spec": spec}
