"""The per-digest cache: finished results live long, the rest briefly; one fetch per key."""

from __future__ import annotations

import threading

from mamori_operator.scanning.cache import ScanCache
from mamori_operator.scanning.model import Outcome, ProviderAnswer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ttl_depends_on_outcome() -> None:
    clock = Clock()
    cache = ScanCache(clock)
    calls: list[str] = []

    def fetcher(outcome: Outcome):
        def fetch() -> ProviderAnswer:
            calls.append(outcome.value)
            return ProviderAnswer("ecr", outcome)

        return fetch

    assert cache.get(("ecr", "d1", ""), fetcher(Outcome.COMPLETE), ttl_complete=60, ttl_other=5)[1]
    assert cache.get(("ecr", "d2", ""), fetcher(Outcome.PENDING), ttl_complete=60, ttl_other=5)[1]
    clock.now += 10
    assert not cache.get(
        ("ecr", "d1", ""), fetcher(Outcome.COMPLETE), ttl_complete=60, ttl_other=5
    )[1]
    assert cache.take_expired() == {"d2"}
    assert cache.take_expired() == set()
    assert cache.get(("ecr", "d2", ""), fetcher(Outcome.COMPLETE), ttl_complete=60, ttl_other=5)[1]
    assert calls == ["complete", "pending", "complete"]


def test_concurrent_misses_fetch_once() -> None:
    cache = ScanCache()
    started = threading.Event()
    release = threading.Event()
    calls = []

    def slow_fetch() -> ProviderAnswer:
        calls.append(1)
        started.set()
        release.wait(5)
        return ProviderAnswer("ecr", Outcome.COMPLETE)

    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                cache.get(("ecr", "d", ""), slow_fetch, ttl_complete=60, ttl_other=5)
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    assert started.wait(5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1
    assert sum(1 for _, fetched in results if fetched) == 1


def test_prune_forgets_unused_digests() -> None:
    cache = ScanCache()
    for digest in ("a", "b"):
        cache.get(("ecr", digest, ""), lambda: None, ttl_complete=60, ttl_other=5)
    cache.prune(["b"])
    assert len(cache) == 1
