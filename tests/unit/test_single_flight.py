"""One registry question in flight per key (mamori.supplychain.single_flight), and the tag
resolution and signature checks that use it: threads that miss the same expired answer
together send one request, not one each."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mamori.images import ImageReference, parse_reference
from mamori.supplychain.registry import (
    Credentials,
    RegistryClient,
    RegistryClientConfig,
    RegistryUnavailable,
    Resolution,
)
from mamori.supplychain.single_flight import SingleFlight
from tests.helpers import wait_for

THREADS = 8
DIGEST = "sha256:" + "a" * 64


class Gate:
    """An ``ask`` that blocks until released, counting its calls."""

    def __init__(self, answer: Any = "answer", failure: Exception | None = None) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.answer = answer
        self.failure = failure
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            self.started.set()
            assert self.release.wait(10)
            if self.failure is not None:
                raise self.failure
        return self.answer


def waiting_followers(flights: SingleFlight[Any], key: str) -> int:
    """How many threads wait on the flight of ``key`` (the Event's waiters: no guessed sleep
    between the followers' start and the leader's release)."""
    flight = flights._flights.get(key)
    return 0 if flight is None else len(flight.done._cond._waiters)  # type: ignore[attr-defined]


def leader_and_followers(
    flights: SingleFlight[Any], ask: Gate, *, wait: float = 10.0, key: str = "k"
) -> list[Any]:
    """The first thread leads (blocked in ``ask``), then THREADS - 1 follow; then release."""
    with ThreadPoolExecutor(THREADS) as pool:
        leader = pool.submit(flights.run, key, ask, wait=wait)
        assert ask.started.wait(10)
        followers = [pool.submit(flights.run, key, ask, wait=wait) for _ in range(THREADS - 1)]
        wait_for(lambda: waiting_followers(flights, key) == THREADS - 1, interval=0.01)
        while_waiting = len(flights)
        ask.release.set()
        results: list[Any] = []
        for future in [leader, *followers]:
            try:
                results.append(future.result(10))
            except Exception as error:  # the leader's failure is the leader's
                results.append(error)
    assert while_waiting == 1
    return results


def test_threads_asking_the_same_key_share_one_call() -> None:
    flights: SingleFlight[str] = SingleFlight()
    ask = Gate()
    results = leader_and_followers(flights, ask)
    assert ask.calls == 1
    assert results[0] == ("answer", False)
    assert results[1:] == [("answer", True)] * (THREADS - 1)
    assert len(flights) == 0


def test_when_the_leader_fails_each_follower_asks_for_itself() -> None:
    flights: SingleFlight[str] = SingleFlight()
    ask = Gate(failure=RegistryUnavailable("registry.example/app:1", "refused"))
    results = leader_and_followers(flights, ask)
    assert isinstance(results[0], RegistryUnavailable)
    assert results[1:] == [("answer", False)] * (THREADS - 1)
    assert ask.calls == THREADS
    assert len(flights) == 0


def test_a_follower_waits_no_longer_than_its_own_deadline() -> None:
    flights: SingleFlight[str] = SingleFlight()
    ask = Gate()
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(flights.run, "k", ask, wait=10)
        assert ask.started.wait(10)
        # the leader is stuck; a follower with 0.05 s to spare asks for itself
        assert flights.run("k", ask, wait=0.05) == ("answer", False)
        ask.release.set()
        assert leader.result(10) == ("answer", False)
    assert ask.calls == 2


def test_other_keys_are_not_held_up() -> None:
    flights: SingleFlight[str] = SingleFlight()
    ask = Gate()
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(flights.run, "one", ask, wait=10)
        assert ask.started.wait(10)
        assert flights.run("two", lambda: "other", wait=10) == ("other", False)
        ask.release.set()
        leader.result(10)


# --- the registry client: one HEAD per expired tag, whatever the number of threads -------------


@pytest.fixture
def client() -> RegistryClient:
    return RegistryClient(RegistryClientConfig(deadline=5.0, cache_ttl=30.0))


def test_threads_resolving_one_tag_send_one_request(
    client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = parse_reference("registry.example/app:1.0")
    ask = Gate(answer=Resolution(reference, DIGEST, None))

    def one_request(
        ref: ImageReference, credentials: Credentials | None, image: str, left: float | None
    ) -> Resolution:
        return ask()  # type: ignore[no-any-return]

    monkeypatch.setattr(client, "_ask", one_request)
    with ThreadPoolExecutor(THREADS) as pool:
        first = pool.submit(client.resolve, reference)
        assert ask.started.wait(10)
        others = [pool.submit(client.resolve, reference) for _ in range(THREADS - 1)]
        flights = client._resolving
        wait_for(
            lambda: (
                len(flights) == 1
                and waiting_followers(flights, next(iter(flights._flights))) == THREADS - 1
            ),
            interval=0.01,
        )
        ask.release.set()
        answers = [future.result(10) for future in [first, *others]]
    assert ask.calls == 1
    assert {answer.digest for answer in answers} == {DIGEST}
    assert [answer.cached for answer in answers] == [False] + [True] * (THREADS - 1)
    assert client.resolve(reference).cached  # and the cache has it
