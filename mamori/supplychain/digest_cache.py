"""A small tag → digest cache: answers live ``ttl`` seconds, at most ``max_entries`` of them.

Admission asks about the same few images again and again; the cache makes that one registry
request per tag per TTL, and bounds both how stale an answer can be and how much memory the
answers take. Its clock is injected, so tests move time instead of waiting.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    resolution: V
    expires: float
    hits: int = 0


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    size: int


class DigestCache(Generic[V]):
    """tag → digest answers for ``ttl`` seconds, at most ``max_entries`` (least recent goes).

    Thread-safe: webhook workers share one. A moved tag is seen at most ``ttl`` late.
    """

    def __init__(
        self, *, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = self._evictions = 0

    def get(self, key: str) -> V | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now >= entry.expires:
                del self._entries[key]
                entry = None
            if entry is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            entry.hits += 1
            self._hits += 1
            return entry.resolution

    def put(self, key: str, resolution: V) -> None:
        if self._max_entries == 0 or self._ttl == 0:
            return
        expires = self._clock() + self._ttl
        with self._lock:
            self._entries[key] = _Entry(resolution, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
                self._evictions += 1

    def expires_at(self, key: str) -> float | None:
        """When ``key``'s answer stops counting (on this cache's clock), None when it is not
        kept; a peek: no hit or miss is counted and the entry keeps its place."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self._clock() >= entry.expires:
            return None
        return entry.expires

    def hits_of(self, key: str) -> int:
        """How often ``key``'s current entry answered (0 when absent)."""
        with self._lock:
            entry = self._entries.get(key)
            return 0 if entry is None else entry.hits

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, len(self._entries))
