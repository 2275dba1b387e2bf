"""One question in flight per key: threads that ask what another is already asking wait for
its answer instead of asking the registry again.

At saturation every request thread of a webhook worker reviews pods of the same few images; when
a kept answer (a tag's digest, a signature verdict) expires, each thread that misses it at that
moment would otherwise send the same request, so a registry sees images times threads times workers
requests at every expiry instead of images times workers. A follower waits at most its own
deadline; if the leader fails (or is slower than that), the follower asks for itself, so no
thread's answer depends on another thread's failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: T | None = None


class SingleFlight(Generic[T]):
    """Per key, one call of ``ask`` at a time; the others share its answer."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._flights)

    def run(self, key: str, ask: Callable[[], T], *, wait: float) -> tuple[T, bool]:
        """``ask()``'s answer, or the answer of the call already in flight for ``key`` (waited
        for at most ``wait`` seconds); the flag is True when the answer was shared."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            if flight.done.wait(timeout=max(wait, 0.0)) and flight.answer is not None:
                return flight.answer, True
            return ask(), False  # the leader failed or is late: ask for ourselves
        try:
            answer = ask()
            flight.answer = answer
            return answer, False
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
