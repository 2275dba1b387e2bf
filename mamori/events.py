"""Kubernetes Events, correlated the way client-go's event correlator does it, as pure values.

The webhook (denials, warnings) and the operator (repairs, vulnerable images) both report on the
objects concerned with core/v1 Events, and both must stay polite to the API server when the same
thing happens again and again (a controller retrying a denied pod every few seconds). This
module decides *what* to write; each process owns *how* (a queue and a thread in the webhook,
the counted client in the operator). No network, no clock of its own: time comes in.

What happens to one occurrence, in client-go's order:

1. **Similar events are combined.** Occurrences on one object with the same type and reason but
   different messages are counted per window (:attr:`Limits.similar_window`); from the
   :attr:`Limits.similar_limit`-th distinct message on, they become one Event whose message
   starts with ``(combined from similar events):`` and shows the latest.
2. **The same event is counted, not repeated.** Same object, type, reason and message: the
   existing Event's ``count`` and ``lastTimestamp`` are PATCHed instead of a new Event created.
3. **Writes are rate-limited per object.** A token bucket per object (burst 25, one token per 5
   minutes, client-go's defaults) allows each write. Unlike client-go, an occurrence that finds
   no token is not forgotten: it is counted, and the count is written once a token is back
   (:meth:`EventCorrelator.due`). Writes of one Event can also be spaced out
   (:attr:`Limits.coalesce_seconds`): occurrences in between are written together, as one PATCH.

The state is bounded: past :attr:`Limits.max_tracked` objects or events, the least recently seen
are forgotten (their next occurrence starts a new Event), as client-go's LRU caches do.
"""

from __future__ import annotations

import datetime
import enum
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

NOTE_MAX_BYTES = 1024  # events.k8s.io's limit on ``note``, which shows core/v1's ``message``
COMBINED_PREFIX = "(combined from similar events): "
CLUSTER_EVENTS_NAMESPACE = "default"  # where Events about cluster-scoped objects go
NAME_MAX_CHARS = 253
NAME_INVALID = re.compile(r"[^a-z0-9.-]+")

K = TypeVar("K")
V = TypeVar("V")


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about (``involvedObject``); ``uid`` only once it exists."""

    api_version: str
    kind: str
    name: str
    uid: str = ""
    namespace: str | None = None

    def to_dict(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.uid:
            ref["uid"] = self.uid
        if self.namespace:
            ref["namespace"] = self.namespace
        return ref

    @property
    def events_namespace(self) -> str:
        """Where its Events live: its own namespace, or ``default`` for cluster-scoped ones."""
        return self.namespace or CLUSTER_EVENTS_NAMESPACE


@dataclass(frozen=True, slots=True, kw_only=True)
class Occurrence:
    """Something worth an Event that just happened, before correlation."""

    subject: ObjectRef
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Reporter:
    """Who writes the Events: ``source.component`` and ``reportingInstance`` (a pod name)."""

    component: str
    instance: str


@dataclass(frozen=True, slots=True)
class Limits:
    """How much is written; the defaults are client-go's."""

    burst: int = 25
    refill_seconds: float = 300.0
    similar_limit: int = 10
    similar_window: float = 600.0
    coalesce_seconds: float = 0.0
    max_tracked: int = 4096


@dataclass(frozen=True, slots=True)
class EventWrite:
    """One request to make: create ``body``, or (``patch`` set) patch the Event named in it.

    ``body`` is always the whole Event as it should now read, so that a PATCH answered 404 (the
    API server expired the Event, one hour by default) can create it again with the full count.
    """

    namespace: str
    name: str
    body: Mapping[str, Any]
    patch: Mapping[str, Any] | None = None

    @property
    def is_create(self) -> bool:
        return self.patch is None


class TokenBucket:
    """``burst`` tokens, one more every ``refill_seconds`` up to ``burst``."""

    def __init__(self, *, burst: int, refill_seconds: float, now: float) -> None:
        self._burst = burst
        self._refill = refill_seconds
        self._tokens = float(burst)
        self._at = now

    def _fill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self._burst, self._tokens + (now - self._at) / self._refill)
        self._at = max(self._at, now)

    def take(self, now: float) -> bool:
        """Use a token if there is one."""
        self._fill(now)
        if self._tokens >= 1 - 1e-9:  # at next_token_at(), despite rounding
            self._tokens = max(0.0, self._tokens - 1)
            return True
        return False

    def next_token_at(self, now: float) -> float:
        """When :meth:`take` will next succeed."""
        self._fill(now)
        return now + max(0.0, 1 - self._tokens) * self._refill


class Bounded(Generic[K, V]):
    """A map that forgets its least recently used entries past ``limit``."""

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._limit = limit

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> K | None:
        """Store; return the key forgotten to make room, if any."""
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._limit:
            forgotten, _ = self._items.popitem(last=False)
            return forgotten
        return None

    def __len__(self) -> int:
        return len(self._items)


SimilarKey = tuple[str, str, str, str, str, str, str]  # namespace, object…, type, reason
EventKey = tuple[SimilarKey, str]  # + message ("" for the combined Event)


@dataclass(slots=True)
class _Similar:
    started: float
    messages: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Record:
    """One Event as this process knows it."""

    name: str
    subject: ObjectRef
    type: EventType
    reason: str
    message: str
    first: float
    last: float
    count: int = 1
    written: int = 0  # the count the API server was last sent
    next_write: float = 0.0  # not before this (coalescing)


class EventCorrelator:
    """Turn occurrences into the few writes that tell the same story; see the module docstring.

    Not thread-safe: one caller at a time (the webhook's sink thread, the operator's lock).
    """

    def __init__(
        self,
        reporter: Reporter,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reporter = reporter
        self.limits = limits or Limits()
        self._clock = clock
        self._records: Bounded[EventKey, _Record] = Bounded(self.limits.max_tracked)
        self._similar: Bounded[SimilarKey, _Similar] = Bounded(self.limits.max_tracked)
        self._buckets: Bounded[tuple[str, ...], TokenBucket] = Bounded(self.limits.max_tracked)
        self._pending: set[EventKey] = set()
        self._last_stamp = 0  # nanoseconds in the last Event name, so that no two collide
        self.rate_limited = 0  # occurrences whose write had to wait for a token

    def observe(self, occurrence: Occurrence) -> list[EventWrite]:
        """Count ``occurrence``; return the write it calls for now (none, or one)."""
        now = self._clock()
        key, message = self._aggregate(occurrence, now)
        record = self._records.get(key)
        if record is None:
            self._last_stamp = max(self._last_stamp + 1, int(now * 1e9))
            record = _Record(
                name=event_name(occurrence.subject, self._last_stamp),
                subject=occurrence.subject,
                type=occurrence.type,
                reason=occurrence.reason,
                message=message,
                first=now,
                last=now,
            )
            forgotten = self._records.put(key, record)
            if forgotten is not None:
                self._pending.discard(forgotten)
        else:
            record.count += 1
            record.last = max(record.last, now)
            record.message = message
        write = self._try_write(key, record, now)
        return [] if write is None else [write]

    def due(self) -> list[EventWrite]:
        """Counts that waited (for a token, or for coalescing) and may be written now."""
        now = self._clock()
        writes = []
        for key in sorted(self._pending):
            record = self._records.get(key)
            if record is None:
                self._pending.discard(key)
                continue
            write = self._try_write(key, record, now, counted=False)
            if write is not None:
                writes.append(write)
        return writes

    def seconds_until_due(self) -> float | None:
        """How long until :meth:`due` may have something to write; None when nothing waits."""
        now = self._clock()
        times = []
        for key in self._pending:
            record = self._records.get(key)
            if record is None:
                continue
            bucket = self._buckets.get(_spam_key(self.reporter, record.subject))
            token = now if bucket is None else bucket.next_token_at(now)
            times.append(max(record.next_write, token) - now)
        return max(0.0, min(times)) if times else None

    def _aggregate(self, occurrence: Occurrence, now: float) -> tuple[EventKey, str]:
        """The key and message after combining similar events (client-go's EventAggregator)."""
        subject = occurrence.subject
        similar_key: SimilarKey = (
            subject.events_namespace,
            subject.api_version,
            subject.kind,
            subject.name,
            subject.uid,
            occurrence.type.value,
            occurrence.reason,
        )
        similar = self._similar.get(similar_key)
        if similar is None or now - similar.started > self.limits.similar_window:
            similar = _Similar(started=now)
            self._similar.put(similar_key, similar)
        similar.messages.add(occurrence.message)
        if len(similar.messages) < self.limits.similar_limit:
            return (similar_key, occurrence.message), occurrence.message
        similar.messages.discard(occurrence.message)  # keep the set at the limit, as client-go
        return (similar_key, ""), COMBINED_PREFIX + occurrence.message

    def _try_write(
        self, key: EventKey, record: _Record, now: float, *, counted: bool = True
    ) -> EventWrite | None:
        if record.count == record.written:
            self._pending.discard(key)
            return None
        bucket_key = _spam_key(self.reporter, record.subject)
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            bucket = TokenBucket(
                burst=self.limits.burst, refill_seconds=self.limits.refill_seconds, now=now
            )
            self._buckets.put(bucket_key, bucket)
        if now < record.next_write or not bucket.take(now):
            if counted and now >= record.next_write:
                self.rate_limited += 1
            self._pending.add(key)
            return None
        self._pending.discard(key)
        body = event_body(record, reporter=self.reporter)
        patch = None
        if record.written:
            patch = {
                "count": record.count,
                "lastTimestamp": body["lastTimestamp"],
                "message": body["message"],
            }
        record.written = record.count
        record.next_write = now + self.limits.coalesce_seconds
        return EventWrite(
            namespace=record.subject.events_namespace, name=record.name, body=body, patch=patch
        )


def event_body(state: _Record, *, reporter: Reporter) -> dict[str, Any]:
    """A core/v1 Event (``kubectl describe`` and ``kubectl get events`` show it)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": state.name, "namespace": state.subject.events_namespace},
        "involvedObject": state.subject.to_dict(),
        "type": state.type.value,
        "reason": state.reason,
        "message": note(state.message),
        "source": {"component": reporter.component},
        "reportingComponent": reporter.component,
        "reportingInstance": reporter.instance[:128],
        "firstTimestamp": timestamp(state.first),
        "lastTimestamp": timestamp(state.last),
        "count": state.count,
    }


def event_name(subject: ObjectRef, stamp: int) -> str:
    """``<object name>.<hex nanoseconds>``, as client-go names Events: unique per process."""
    suffix = f".{stamp:x}"
    prefix = NAME_INVALID.sub("-", subject.name.lower()).strip("-.") or "object"
    return prefix[: NAME_MAX_CHARS - len(suffix)].rstrip("-.") + suffix


def timestamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def note(message: str, limit: int = NOTE_MAX_BYTES) -> str:
    """``message`` as one line of at most ``limit`` UTF-8 bytes, for kubectl's tables.

    ``kubectl get events`` shows only a message's first line, and ``kubectl describe`` prints it
    as is inside its table, so a multi-line message (a header, then ``- `` items, as mamori's
    denials are) is joined into one line: ``header item; item; …``. What does not fit is cut at
    an item boundary, saying how many items were left out; a header or first item too long on
    its own is cut at a character boundary with an ellipsis.
    """
    head, *rest = message.split("\n")
    items = [line.removeprefix("- ").strip() for line in rest if line.strip()]
    joined = " ".join([head, "; ".join(items)]) if items else head
    if len(joined.encode()) <= limit:
        return joined
    for keep in range(len(items) - 1, 0, -1):
        left = len(items) - keep
        candidate = f"{head} {'; '.join(items[:keep])}; … and {left} more"
        if len(candidate.encode()) <= limit:
            return candidate
    return _cut(joined, limit)


def _cut(text: str, limit: int) -> str:
    ellipsis = "…"
    budget = limit - len(ellipsis.encode())
    cut = text.encode()[:budget].decode("utf-8", errors="ignore")
    return cut.rstrip() + ellipsis


def _spam_key(reporter: Reporter, subject: ObjectRef) -> tuple[str, ...]:
    """One bucket per reporter and object, as client-go's spam filter keys it."""
    return (
        reporter.component,
        subject.events_namespace,
        subject.api_version,
        subject.kind,
        subject.name,
        subject.uid,
    )
