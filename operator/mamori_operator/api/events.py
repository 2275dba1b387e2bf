"""Kubernetes Events, so that ``kubectl describe`` tells admins what the operator did and why.

What to write (counting repeats, combining similar ones, rate-limiting per object) is decided by
the shared :class:`mamori.events.EventCorrelator`; this module only makes the requests, through
the counted client. Posting is best effort: a failure is logged and never fails the work it
reports on. Each occurrence is counted in ``mamori_operator_event_posts_total``: ``posted`` (a
new Event) or ``aggregated`` (counted on an existing one); nothing is dropped. A count that had
to wait for the object's rate limit is written by :meth:`EventRecorder.flush` (the housekeeper's
every pass) or by the next post, whichever comes first once a token is back. Events about
cluster-scoped objects (policies) go to the ``default`` namespace, where
``kubectl describe csp`` finds them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mamori.events import (
    CLUSTER_EVENTS_NAMESPACE,
    EventCorrelator,
    EventType,
    EventWrite,
    Limits,
    ObjectRef,
    Occurrence,
    Reporter,
)
from mamori_operator.api.kube import Kube, KubeError

__all__ = ["CLUSTER_EVENTS_NAMESPACE", "COMPONENT", "EventRecorder", "ObjectRef"]

logger = logging.getLogger(__name__)
COMPONENT = "mamori-operator"


class EventRecorder:
    def __init__(
        self,
        kube: Kube,
        *,
        instance: str,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.instance = instance
        self._correlator = EventCorrelator(
            Reporter(COMPONENT, instance), limits=limits, clock=clock
        )
        self._lock = threading.Lock()  # handlers post from kopf's worker threads

    def normal(self, subject: ObjectRef, *, reason: str, message: str) -> None:
        self.post(subject, kind=EventType.NORMAL, reason=reason, message=message)

    def warning(self, subject: ObjectRef, *, reason: str, message: str) -> None:
        self.post(subject, kind=EventType.WARNING, reason=reason, message=message)

    def post(self, subject: ObjectRef, *, kind: EventType | str, reason: str, message: str) -> None:
        occurrence = Occurrence(
            subject=subject, type=EventType(kind), reason=reason, message=message
        )
        with self._lock:
            writes = self._correlator.observe(occurrence)
            outcome = "posted" if writes and writes[0].is_create else "aggregated"
            writes += self._correlator.due()
        self.kube.metrics.event_posts.labels(outcome=outcome).inc()
        for write in writes:
            self._send(write)

    def flush(self) -> int:
        """Write the counts that waited for their object's rate limit and may go now."""
        with self._lock:
            writes = self._correlator.due()
        for write in writes:
            self._send(write)
        return len(writes)

    def _send(self, write: EventWrite) -> None:
        collection = f"/api/v1/namespaces/{write.namespace}/events"
        try:
            if write.patch is not None:
                try:
                    self.kube.merge_patch(
                        f"{collection}/{write.name}", write.patch, resource="events"
                    )
                    return
                except KubeError as error:
                    if error.status != 404:  # expired: create it again, count and all
                        raise
            self.kube.create(collection, write.body, resource="events")
        except KubeError as error:
            reason = write.body.get("reason")
            logger.warning("could not post event %s on %s: %s", reason, write.name, error)
