"""Provider answers cached per digest, each with its own expiry, and one fetch at a time per key.

Finished results (clean or vulnerable) live for the policy's ``cacheTTL``; "pending",
"unscanned" and errors only for its ``rescanInterval``, so they are asked again soon. When many
pods of one image start together, the first asks the provider and the others wait for its answer
instead of sending the same request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mamori_operator.scanning.model import Outcome, ProviderAnswer

CacheKey = tuple[str, str, str]  # provider, digest, scope


@dataclass(frozen=True, slots=True)
class CacheEntry:
    answer: ProviderAnswer | None  # None: the provider does not apply to this image
    expires_at: float


class ScanCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[CacheKey, CacheEntry] = {}
        self._flights: dict[CacheKey, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(
        self,
        key: CacheKey,
        fetch: Callable[[], ProviderAnswer | None],
        *,
        ttl_complete: float,
        ttl_other: float,
    ) -> tuple[ProviderAnswer | None, bool]:
        """Return (answer, fetched): the cached answer while fresh, else ``fetch()``'s."""
        with self._guard:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at > self.clock():
                return entry.answer, False
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            with self._guard:
                entry = self._entries.get(key)
                if entry is not None and entry.expires_at > self.clock():
                    return entry.answer, False
            answer = fetch()
            complete = answer is None or answer.outcome is Outcome.COMPLETE
            ttl = ttl_complete if complete else ttl_other
            with self._guard:
                self._entries[key] = CacheEntry(answer, self.clock() + ttl)
            return answer, True

    def take_expired(self) -> set[str]:
        """Drop stale entries and return their digests: those pods are due for a fresh look."""
        now = self.clock()
        with self._guard:
            stale = [key for key, entry in self._entries.items() if entry.expires_at <= now]
            for key in stale:
                del self._entries[key]
            return {key[1] for key in stale}

    def prune(self, digests_in_use: Iterable[str]) -> None:
        """Forget digests that no pod runs any more (bounded memory over time)."""
        keep = set(digests_in_use)
        with self._guard:
            for key in [k for k in self._entries if k[1] not in keep]:
                del self._entries[key]
                self._flights.pop(key, None)

    def __len__(self) -> int:
        with self._guard:
            return len(self._entries)
