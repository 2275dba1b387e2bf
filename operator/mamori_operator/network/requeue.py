"""Retry failed work with exponential backoff, instead of waiting for the next full resync.

Like client-go's rate-limited work queue: each failure of the same key doubles its delay (from
``base`` up to ``limit``), a success forgets the key, and a key waits in the queue at most once.
One thread sleeps until the earliest key is due and hands it to ``work``; :meth:`run_due` does
the same synchronously, which is what unit tests drive with an injected clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Requeue:
    def __init__(
        self,
        work: Callable[[str], object],
        *,
        base: float,
        limit: float,
        name: str = "mamori-requeue",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.work = work
        self.base = base
        self.limit = limit
        self.name = name
        self.clock = clock
        self._failures: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._changed = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- what the work reports -----------------------------------------------------------------

    def failed(self, key: str) -> float:
        """Schedule ``key`` again after its backoff; return that delay in seconds."""
        with self._changed:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = min(self.base * 2.0**failures, self.limit)
            due = self.clock() + delay
            self._due[key] = min(self._due.get(key, due), due)
            self._changed.notify_all()
        return delay

    def forget(self, key: str) -> None:
        """``key`` succeeded: drop its backoff and any pending retry."""
        with self._changed:
            self._failures.pop(key, None)
            self._due.pop(key, None)

    def pending(self) -> dict[str, float]:
        """Key → seconds until its retry (for status and tests)."""
        now = self.clock()
        with self._changed:
            return {key: max(0.0, due - now) for key, due in self._due.items()}

    # -- running -------------------------------------------------------------------------------

    def run_due(self) -> list[str]:
        """Run every key that is due now; return them."""
        now = self.clock()
        with self._changed:
            due = sorted(key for key, when in self._due.items() if when <= now)
            for key in due:
                del self._due[key]
        for key in due:
            try:
                self.work(key)
            except Exception:  # the work reports its own failures; keep the queue alive
                logger.exception("retry of %s failed", key)
                self.failed(key)
        return due

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                if self._stopped:
                    return
                wait = min(self._due.values(), default=None)
                if wait is None:
                    self._changed.wait()
                    continue
                remaining = wait - self.clock()
                if remaining > 0:
                    self._changed.wait(remaining)
                    continue
            self.run_due()
