"""Failed work comes back after a doubling delay, not at the next full resync."""

from __future__ import annotations

from mamori_operator.network.requeue import Requeue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_is_retried_after_a_doubling_delay_up_to_the_limit() -> None:
    clock, ran = Clock(), []
    queue = Requeue(ran.append, base=0.5, limit=3.0, clock=clock)
    assert [queue.failed("shop") for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert queue.pending() == {"shop": 0.5}  # the earliest pending retry is kept


def test_due_keys_run_once_and_success_forgets_the_backoff() -> None:
    clock, ran = Clock(), []
    queue = Requeue(ran.append, base=1.0, limit=60.0, clock=clock)
    queue.failed("shop")
    assert queue.run_due() == []
    clock.now += 1.0
    assert queue.run_due() == ["shop"] and ran == ["shop"]
    assert queue.run_due() == []
    assert queue.failed("shop") == 2.0  # second failure in a row
    queue.forget("shop")
    assert queue.pending() == {}
    assert queue.failed("shop") == 1.0  # a fresh failure starts from the base again


def test_the_thread_runs_the_retry_when_due() -> None:
    import threading

    done = threading.Event()
    queue = Requeue(lambda key: done.set(), base=0.01, limit=1.0)
    queue.start()
    try:
        queue.failed("shop")
        assert done.wait(5.0)
    finally:
        queue.stop()
