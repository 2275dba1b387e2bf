"""A queue of keys to look at, each at most once in it and never worked on by two threads.

Like client-go's workqueue: a key added while it waits is not added again (ten events for one
pod before a worker gets to it cost one look), and a key added while a worker holds it is put
back when that worker is done, so the newest state is always looked at once more and two
threads never patch the same object at once. It holds keys, never objects, so its size is
bounded by the number of distinct keys however fast events come.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._closed = False
        self._ready = threading.Condition()

    def add(self, key: K) -> None:
        with self._ready:
            if key in self._dirty or self._closed:
                return
            self._dirty.add(key)
            if key in self._processing:
                return  # requeued by done()
            self._queue.append(key)
            self._ready.notify()

    def add_all(self, keys: Iterable[K]) -> None:
        for key in keys:
            self.add(key)

    def get(self, timeout: float | None = None) -> K | None:
        """The next key (now the caller's until :meth:`done`), or None when closed or timed out."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._queue or self._closed, timeout):
                return None
            if self._closed:
                return None
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: K) -> None:
        with self._ready:
            self._processing.discard(key)
            if key in self._dirty and not self._closed:
                self._queue.append(key)
                self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def __len__(self) -> int:
        with self._ready:
            return len(self._queue)

    def idle(self) -> bool:
        """Nothing waiting and nothing being worked on."""
        with self._ready:
            return not self._queue and not self._processing
