"""The housekeeper's timing (mamori_operator/housekeeper.py): what runs on which pass, by the clock.

The loop's own waits are real but tiny (``status_interval`` 10 ms); *when* a resync or a rescan
is due is decided by the injected clock, which only the test moves. Its collaborators are
recorders: what is under test is the schedule, not the reconcilers (tested on their own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mamori_operator.housekeeper import Housekeeper, pause_after
from mamori_operator.memory import heap_trimmer
from mamori_operator.scanning.cache import ScanCache
from mamori_operator.scanning.model import Outcome, ProviderAnswer
from mamori_operator.state.cluster import RelistChanges
from tests.helpers import wait_for

RESYNC_INTERVAL = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """Stands in for the reconciler, the scanner, the status writer and the state."""

    resyncs: list[float] = field(default_factory=list)
    refreshes: int = 0
    rescanned: list[list[str]] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    fail_resyncs: int = 0
    fail_refreshes: int = 0
    clock: Clock = field(default_factory=Clock)

    def reconcile_all(self) -> None:
        self.resyncs.append(self.clock.now)
        if self.fail_resyncs:
            self.fail_resyncs -= 1
            raise RuntimeError("the API server said no")

    def refresh(self) -> int:
        self.refreshes += 1
        if self.fail_refreshes:
            self.fail_refreshes -= 1
            raise RuntimeError("status write failed")
        return 0

    def refresh_digests(self, digests: Iterable[str]) -> int:
        self.rescanned.append(list(digests))
        return 0

    def refresh_pods(self, keys: Iterable[Any]) -> int:
        return 0

    def digests_in_use(self) -> list[str]:
        return list(self.digests)


class CountingEvent(threading.Event):
    """``synced``: counts how often the loop looked, so a test can wait for it to have looked."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.looks += 1
        return super().wait(timeout)


@dataclass
class Running:
    keeper: Housekeeper
    recorder: Recorder
    clock: Clock
    cache: ScanCache
    synced: CountingEvent

    def passes_after(self, count: int) -> int:
        """Wait until ``count`` more passes have run; return the pass count then."""
        target = self.keeper.passes + count
        wait_for(lambda: self.keeper.passes >= target, message=f"{count} more passes")
        return self.keeper.passes


@pytest.fixture
def running() -> Iterator[Running]:
    recorder = Recorder()
    clock = recorder.clock
    cache = ScanCache(clock=clock)
    synced = CountingEvent()
    keeper = keeper_for(recorder, synced, cache=cache)
    keeper.start()
    try:
        yield Running(keeper, recorder, clock, cache, synced)
    finally:
        keeper.stop()
    assert keeper._thread is not None and not keeper._thread.is_alive()


def answer(outcome: Outcome) -> ProviderAnswer:
    return ProviderAnswer(provider="ecr", outcome=outcome)


def test_nothing_runs_before_the_first_list_is_in(running: Running) -> None:
    wait_for(lambda: running.synced.looks >= 3, message="the loop to look three times")
    assert running.keeper.passes == 0
    assert running.recorder.resyncs == [] and running.recorder.refreshes == 0
    running.synced.set()
    running.passes_after(1)
    assert running.recorder.resyncs == [1000.0]  # the first pass converges everything


def test_a_resync_runs_once_per_interval_of_the_clock(running: Running) -> None:
    running.synced.set()
    running.passes_after(5)
    assert running.recorder.resyncs == [1000.0]
    running.clock.now += RESYNC_INTERVAL - 0.5
    running.passes_after(5)
    assert running.recorder.resyncs == [1000.0]
    running.clock.now += 0.5  # exactly one interval after the last resync: due
    running.passes_after(2)
    assert running.recorder.resyncs == [1000.0, 1000.0 + RESYNC_INTERVAL]
    running.passes_after(5)
    assert len(running.recorder.resyncs) == 2


def test_status_is_refreshed_on_every_pass(running: Running) -> None:
    running.synced.set()
    before = running.passes_after(1)
    refreshes = running.recorder.refreshes
    after = running.passes_after(10)
    assert running.recorder.refreshes - refreshes == after - before


def test_a_failed_resync_is_retried_on_the_next_pass_not_a_whole_interval_later(
    running: Running,
) -> None:
    running.recorder.fail_resyncs = 2
    running.synced.set()
    running.passes_after(4)
    assert running.recorder.resyncs == [1000.0, 1000.0, 1000.0]  # two failures, then it held
    running.passes_after(5)
    assert len(running.recorder.resyncs) == 3  # back on the interval


def test_a_failing_status_write_does_not_stop_the_loop(running: Running) -> None:
    running.recorder.fail_refreshes = 3
    running.synced.set()
    running.passes_after(6)
    assert running.recorder.refreshes >= 6 and running.keeper._thread is not None
    assert running.keeper._thread.is_alive()


def test_a_resync_wanted_runs_on_the_next_pass_without_waiting_for_the_clock(
    running: Running,
) -> None:
    running.synced.set()
    running.passes_after(2)
    running.keeper.relist_wanted.set()
    running.passes_after(2)
    assert running.recorder.resyncs == [1000.0, 1000.0]
    assert not running.keeper.relist_wanted.is_set()


def test_expired_scan_answers_are_rescanned_and_unused_digests_forgotten(
    running: Running,
) -> None:
    cache, clock = running.cache, running.clock
    running.recorder.digests = ["sha256:in-use", "sha256:pending"]
    for digest, outcome in [
        ("sha256:in-use", Outcome.COMPLETE),
        ("sha256:pending", Outcome.PENDING),
        ("sha256:gone", Outcome.COMPLETE),
    ]:
        cache.get(("ecr", digest, ""), lambda o=outcome: answer(o), ttl_complete=3600, ttl_other=60)
    running.synced.set()
    running.passes_after(3)
    assert running.recorder.rescanned == []  # nothing expired yet; "gone" is pruned
    assert [key[1] for key in cache._entries] == ["sha256:in-use", "sha256:pending"]
    clock.now += 60  # the pending answer's rescan interval has passed
    running.passes_after(2)
    assert running.recorder.rescanned == [["sha256:pending"]]
    clock.now += 3600
    running.passes_after(2)
    assert running.recorder.rescanned == [["sha256:pending"], ["sha256:in-use"]]


def test_stop_ends_the_thread_even_before_the_first_list(running: Running) -> None:
    running.keeper.stop(timeout=5)
    assert running.keeper._thread is not None and not running.keeper._thread.is_alive()
    assert running.keeper.passes == 0


def test_pods_are_listed_again_on_every_resync_but_the_first() -> None:
    """The pod feed's own first list is what the first pass converges against; later resyncs
    (and wanted ones) ask it for another."""
    recorder = Recorder()
    asked: list[float] = []
    synced = CountingEvent()
    keeper = listing_keeper(recorder, synced, asked)
    keeper.start()
    try:
        synced.set()
        wait_for(lambda: keeper.resyncs == 1, message="the first resync")
        recorder.clock.now += RESYNC_INTERVAL
        wait_for(lambda: keeper.resyncs == 2, message="the second resync")
        keeper.relist_wanted.set()
        wait_for(lambda: keeper.resyncs == 3, message="a wanted resync")
    finally:
        keeper.stop()
    assert asked == [1000.0 + RESYNC_INTERVAL, 1000.0 + RESYNC_INTERVAL]


CONFIRM_AFTER = 30.0


def test_after_a_primed_start_a_confirming_resync_comes_soon_without_a_pod_relist() -> None:
    """The prime lists each kind a moment before kopf does: the second resync, ``confirm_after``
    after the first, drops what was deleted in between; pods (their own feed, no such gap) are
    listed again only from the first periodic resync on; the first pass lists nothing again."""
    recorder = Recorder()
    asked: list[float] = []
    synced = CountingEvent()
    keeper = listing_keeper(recorder, synced, asked, confirm_after=CONFIRM_AFTER)
    keeper.start()
    try:
        synced.set()
        wait_for(lambda: keeper.resyncs == 1, message="the first resync")
        recorder.clock.now += CONFIRM_AFTER - 0.5
        wait_for(lambda: keeper.passes >= 3, message="three passes")
        assert keeper.resyncs == 1  # not due yet
        recorder.clock.now += 0.5
        wait_for(lambda: keeper.resyncs == 2, message="the confirming resync")
        recorder.clock.now += RESYNC_INTERVAL - 0.5
        passes = keeper.passes
        wait_for(lambda: keeper.passes >= passes + 3, message="passes")
        assert keeper.resyncs == 2  # the periodic interval counts from the confirming one
        recorder.clock.now += 0.5
        wait_for(lambda: keeper.resyncs == 3, message="the first periodic resync")
    finally:
        keeper.stop()
    assert recorder.resyncs == [1000.0, 1030.0, 1330.0]
    assert asked == [1330.0]
    assert keeper.lister.relists == 2  # type: ignore[union-attr]  # not on the first: the prime listed


class UnchangedLister:
    def __init__(self) -> None:
        self.relists = 0

    def relist(self) -> RelistChanges:
        self.relists += 1
        return RelistChanges()


def keeper_for(recorder: Recorder, synced: CountingEvent, **settings: Any) -> Housekeeper:
    """A housekeeper whose collaborators are ``recorder``, on its clock, 10 ms between passes."""
    settings.setdefault("cache", ScanCache(clock=recorder.clock))
    return Housekeeper(
        state=recorder,  # type: ignore[arg-type]
        reconciler=recorder,  # type: ignore[arg-type]
        scanner=recorder,  # type: ignore[arg-type]
        status=recorder,  # type: ignore[arg-type]
        synced=synced,
        status_interval=0.01,
        resync_interval=RESYNC_INTERVAL,
        clock=recorder.clock,
        **settings,
    )


def listing_keeper(
    recorder: Recorder, synced: CountingEvent, asked: list[float], **settings: Any
) -> Housekeeper:
    """A housekeeper with a lister, noting in ``asked`` when it asks the pod feed to list."""
    return keeper_for(
        recorder,
        synced,
        lister=UnchangedLister(),
        relist_pods=lambda: asked.append(recorder.clock.now),
        **settings,
    )


def test_the_heap_is_trimmed_on_every_pass() -> None:
    recorder = Recorder()
    trims: list[int] = []
    synced = CountingEvent()
    keeper = keeper_for(recorder, synced, trim_heap=lambda: trims.append(keeper.passes))
    keeper.start()
    try:
        synced.set()
        wait_for(lambda: keeper.passes >= 3, message="three passes")
    finally:
        keeper.stop()
    assert trims[:3] == [0, 1, 2]


def test_glibc_trims_its_heap() -> None:
    trim = heap_trimmer()  # glibc, as in the image (python:3.11-slim); musl would give None
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was given back


@pytest.mark.parametrize(
    ("took", "pause"),
    [
        pytest.param(0.01, 2.0, id="a quick pass keeps the status interval"),
        pytest.param(0.2, 2.0, id="a tenth of the interval still keeps it"),
        pytest.param(1.0, 9.0, id="a second's pass waits nine"),
        pytest.param(10.0, 30.0, id="never longer than the longest pause"),
    ],
)
def test_long_passes_stretch_the_pause_to_keep_their_share(took: float, pause: float) -> None:
    assert pause_after(took, interval=2.0, share=0.1, longest=30.0) == pytest.approx(pause)


def test_the_longest_pause_never_shortens_a_longer_interval() -> None:
    assert pause_after(0.0, interval=60.0, share=0.1, longest=30.0) == 60.0


class SlowStatus(Recorder):
    """A status refresh that spends ``burn`` CPU seconds, as one does at 50,000 pods."""

    burn: float = 0.02

    def refresh(self) -> int:
        began = time.thread_time()
        while time.thread_time() - began < self.burn:
            pass
        return super().refresh()


class Flushes:
    """Stands in for the EventRecorder: counts the flushes of held-back Event counts."""

    def __init__(self) -> None:
        self.count = 0

    def flush(self) -> int:
        self.count += 1
        return 0


def test_a_long_status_refresh_waits_its_turn_while_the_rest_of_each_pass_does_not() -> None:
    recorder = SlowStatus()
    flushes = Flushes()
    synced = CountingEvent()
    keeper = keeper_for(recorder, synced, events=flushes, busy_share=0.1)
    keeper.start()
    try:
        synced.set()
        wait_for(lambda: keeper.passes >= 1, message="the first pass")
        passes = keeper.passes
        wait_for(lambda: keeper.passes >= passes + 5, message="five more passes")
        # 20 ms of CPU at a tenth of a core: the next refresh is 180 ms away on the clock,
        # which stands still; the passes go on
        assert recorder.refreshes == 1
        assert flushes.count >= 6
        keeper.relist_wanted.set()
        wait_for(lambda: len(recorder.resyncs) == 2, message="the wanted resync")
        assert recorder.refreshes == 1  # a wanted resync does not wait for the status's turn
        recorder.clock.now += 0.2
        wait_for(lambda: recorder.refreshes == 2, message="the status's next turn")
    finally:
        keeper.stop()
