"""Posting the webhook's Events without ever slowing or failing an admission answer.

A request thread only puts an :class:`~mamori.events.Occurrence` on a bounded queue
(``put_nowait``: no lock held for long, no I/O); one background thread per worker process
drains it, correlates (:class:`~mamori.events.EventCorrelator`: counts repeats, combines
similar messages, rate-limits per object) and writes to the API server. When the queue is full
the occurrence is dropped and counted, and one log line per interval says how many were. Write
failures are logged the same way: an API server that is away must not flood the log.

Each gunicorn worker has its own queue, thread and correlator: a denial repeated across workers
is counted by each, so it may show as up to one Event per worker (their counts add up).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from mamori.events import EventCorrelator, EventWrite, Occurrence
from mamori_webhook.admission import Verdict
from mamori_webhook.admission_events import occurrences
from mamori_webhook.review import AdmissionRequest

LOG = logging.getLogger("mamori_webhook.events")
COMPONENT = "mamori-webhook"
QUEUE_CAPACITY = 1000
LOG_INTERVAL = 60.0  # seconds between two lines about dropped occurrences or failed writes
COALESCE_SECONDS = 1.0  # one write per Event per second at most; repeats between are summed
IDLE_WAIT = 1.0  # seconds the thread blocks on an empty queue before checking for stop
REQUEST_TIMEOUT = 5.0


class EventWriter(Protocol):
    """Makes one write; raises on failure (``status`` 404 on a PATCH: the Event is gone)."""

    def write(self, write: EventWrite) -> None: ...


class KubeEventWriter:
    """Writes with the webhook's own API client (its credentials, its TLS settings)."""

    def __init__(self, api_client: Any, *, timeout: float = REQUEST_TIMEOUT) -> None:
        import kubernetes.client

        self._core = kubernetes.client.CoreV1Api(api_client)
        self._timeout = timeout

    def write(self, write: EventWrite) -> None:
        from kubernetes.client.rest import ApiException

        if write.patch is not None:
            try:
                self._core.patch_namespaced_event(
                    write.name,
                    write.namespace,
                    dict(write.patch),
                    _content_type="application/merge-patch+json",
                    _request_timeout=self._timeout,
                )
                return
            except ApiException as error:
                if error.status != 404:  # expired: create it again, count and all
                    raise
        self._core.create_namespaced_event(
            write.namespace, dict(write.body), _request_timeout=self._timeout
        )


class EveryInterval:
    """Say something at most once per interval, with how many times it happened meanwhile."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._since = 0

    def count(self) -> int | None:
        """Count one; return how many to report now, or None while the interval lasts."""
        self._since += 1
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return None
        self._last, reported, self._since = now, self._since, 0
        return reported


class EventSink:
    """A bounded queue of occurrences and the thread that writes them; see the module docstring."""

    def __init__(
        self,
        *,
        correlator: EventCorrelator,
        writer: EventWriter,
        capacity: int = QUEUE_CAPACITY,
        log_interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._correlator = correlator
        self._writer = writer
        self._queue: queue.Queue[Occurrence | None] = queue.Queue(maxsize=capacity)
        self._clock = clock
        self._drops = EveryInterval(log_interval, clock)
        self._failures = EveryInterval(log_interval, clock)
        self._drop_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._outcomes: Callable[[str], object] = _ignore
        self.dropped = 0  # occurrences refused because the queue was full
        self.written = 0  # requests that succeeded
        self.failed = 0  # requests that failed

    def count_outcomes(self, count: Callable[[str], object]) -> None:
        """Call ``count`` with each occurrence's fate: ``posted`` (a new Event), ``aggregated``
        (counted on an existing one, written now or later) or ``dropped`` (queue full)."""
        self._outcomes = count

    # -- request threads ------------------------------------------------------------------------

    def post(self, occurrence: Occurrence) -> bool:
        """Queue ``occurrence``; False (and counted) when the queue is full. Never blocks."""
        try:
            self._queue.put_nowait(occurrence)
            return True
        except queue.Full:
            self._outcomes("dropped")
            with self._drop_lock:
                self.dropped += 1
                reported = self._drops.count()
            if reported is not None:
                LOG.warning(
                    "dropped %d Kubernetes Event(s): the queue of %d is full (the API server is "
                    "slow or unreachable)",
                    reported,
                    self._queue.maxsize,
                )
            return False

    def report(self, request: AdmissionRequest, verdict: Verdict) -> None:
        """The admission hook: queue the Events this answer calls for."""
        for occurrence in occurrences(request, verdict):
            self.post(occurrence)

    # -- the writer thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="event-sink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (within ``timeout``), then end the thread."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # then it sees _stopping after its current batch
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        while not self._stopping.is_set():
            self.step(self._wait_seconds())
        self.step(0)  # what was queued before stop

    def step(self, wait: float) -> None:
        """Take what is queued (waiting up to ``wait`` for the first), correlate, write."""
        batch = self._take(wait)
        writes: list[EventWrite] = []
        for occurrence in batch:
            new = self._correlator.observe(occurrence)
            self._outcomes("posted" if new and new[0].is_create else "aggregated")
            writes += new
        writes += self._correlator.due()
        self._write_all(writes)

    def _wait_seconds(self) -> float:
        due = self._correlator.seconds_until_due()
        return IDLE_WAIT if due is None else min(IDLE_WAIT, due)

    def _take(self, wait: float) -> list[Occurrence]:
        items: list[Occurrence | None] = []
        try:
            items.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
            while True:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return [item for item in items if item is not None]

    def _write_all(self, writes: list[EventWrite]) -> None:
        for write in writes:
            try:
                self._writer.write(write)
                self.written += 1
            except Exception as error:  # any failure: count, log now and then, carry on
                self.failed += 1
                reported = self._failures.count()
                if reported is not None:
                    LOG.warning(
                        "could not post %d Kubernetes Event(s), the last %s on %s/%s: %s",
                        reported,
                        write.body.get("reason"),
                        write.namespace,
                        write.name,
                        _describe(error),
                    )


def _ignore(outcome: str) -> None:
    return None


def _describe(error: BaseException) -> str:
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return f"{type(error).__name__}: {error}"
