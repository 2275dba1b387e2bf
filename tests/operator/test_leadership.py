"""Leader election (mamori_operator/api/leadership.py) against the real API server, with an
injected clock.

The Lease and its optimistic concurrency are the API server's, so these run on the session
control plane (or, for a network fault, a private one behind a LoopbackProxy); the clock that
decides when a standby may take over, and when a leader gives up, is the test's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mamori.kubeconfig import load_client_configuration
from mamori_dev.controlplane import LocalControlPlane
from mamori_operator.api.kube import Kube
from mamori_operator.api.leadership import LeaseElector, lease_path
from mamori_operator.metrics import Metrics
from tests.helpers import wait_for
from tests.integration.faults import LoopbackProxy

pytestmark = pytest.mark.integration
LEASE = "mamori-operator"


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingKube(Kube):
    """The real client, counting Lease calls, with a hook just before each replace."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(load_client_configuration(kubeconfig), metrics=Metrics(), pool=2)
        self.calls = 0
        self.before_replace: Callable[[], None] | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        return super().request(method, path, **kwargs)

    def replace(self, path: str, body: Any, *, resource: str, **kwargs: Any) -> dict[str, Any]:
        hook, self.before_replace = self.before_replace, None
        if hook is not None:
            hook()
        return super().replace(path, body, resource=resource, **kwargs)


@pytest.fixture
def kubes(kubeconfig: Path) -> Iterator[list[CountingKube]]:
    made: list[CountingKube] = []
    yield made
    for kube in made:
        kube.close()


@pytest.fixture
def make_elector(
    kubeconfig: Path, namespace: str, kubes: list[CountingKube]
) -> Callable[..., LeaseElector]:
    def make(
        identity: str,
        *,
        clock: Clock,
        lease_seconds: float = 15.0,
        config: Path | None = None,
    ) -> LeaseElector:
        kube = CountingKube(config or kubeconfig)
        kubes.append(kube)
        return LeaseElector(
            kube,
            namespace=namespace,
            name=LEASE,
            identity=identity,
            lease_seconds=lease_seconds,
            clock=clock,
        )

    return make


def counting(elector: LeaseElector) -> CountingKube:
    assert isinstance(elector.kube, CountingKube)
    return elector.kube


def lease_spec(elector: LeaseElector) -> dict[str, Any]:
    lease = elector.kube.get(lease_path(elector.namespace, LEASE), resource="leases")
    assert lease is not None
    return dict(lease["spec"])


def test_the_first_candidate_creates_the_lease_and_leads(
    make_elector: Callable[..., LeaseElector],
) -> None:
    leader = make_elector("a", clock=Clock())
    assert leader.try_acquire_or_renew()
    spec = lease_spec(leader)
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"]
    first_renewal = spec["renewTime"]
    assert leader.try_acquire_or_renew()  # a renewal: same holder, new renewTime
    renewed = lease_spec(leader)
    assert renewed["holderIdentity"] == "a" and renewed["leaseTransitions"] == 0
    assert renewed["renewTime"] != first_renewal and renewed["acquireTime"] == first_renewal


def test_a_standby_takes_over_only_after_a_full_lease_without_renewal_by_its_own_clock(
    make_elector: Callable[..., LeaseElector],
) -> None:
    leader, standby_clock = make_elector("a", clock=Clock()), Clock(start=5000.0)
    standby = make_elector("b", clock=standby_clock)
    assert leader.try_acquire_or_renew()

    assert not standby.try_acquire_or_renew()  # first sight of the record, at 5000
    standby_clock.advance(14)
    assert not standby.try_acquire_or_renew()
    assert leader.try_acquire_or_renew()  # renewed: the standby's wait starts again
    standby_clock.advance(2)  # 16s after the first sight, but only now is the renewal seen
    assert not standby.try_acquire_or_renew()
    standby_clock.advance(15)  # exactly a lease since the renewal was seen: not yet
    assert not standby.try_acquire_or_renew()
    standby_clock.advance(0.01)
    assert standby.try_acquire_or_renew()

    spec = lease_spec(standby)
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1
    assert spec["acquireTime"] == spec["renewTime"]
    assert not leader.try_acquire_or_renew()  # the old leader now sees b's fresh record


def test_the_holders_wall_clock_in_renew_time_does_not_decide(
    make_elector: Callable[..., LeaseElector],
) -> None:
    """A renewTime from the year 2000 (a node whose clock is off) is no reason to take over."""
    leader, standby_clock = make_elector("a", clock=Clock()), Clock()
    standby = make_elector("b", clock=standby_clock)
    assert leader.try_acquire_or_renew()
    path = lease_path(leader.namespace, LEASE)
    leader.kube.merge_patch(
        path, {"spec": {"renewTime": "2000-01-01T00:00:00.000000Z"}}, resource="leases"
    )
    assert not standby.try_acquire_or_renew()
    standby_clock.advance(15.01)
    assert standby.try_acquire_or_renew()


def test_a_released_lease_is_taken_at_once(make_elector: Callable[..., LeaseElector]) -> None:
    leader, standby = make_elector("a", clock=Clock()), make_elector("b", clock=Clock())
    assert leader.try_acquire_or_renew()
    assert not standby.try_acquire_or_renew()
    leader.release()
    assert lease_spec(leader).get("holderIdentity") is None
    assert standby.try_acquire_or_renew()  # no clock advance needed
    assert lease_spec(standby)["holderIdentity"] == "b"
    assert lease_spec(standby)["leaseTransitions"] == 1
    leader.release()  # not the holder any more: leaves b's Lease alone
    assert lease_spec(standby)["holderIdentity"] == "b"


def test_two_standbys_racing_for_an_expired_lease_cannot_both_win(
    make_elector: Callable[..., LeaseElector],
) -> None:
    clock = Clock()
    leader = make_elector("a", clock=clock)
    first, second = make_elector("b", clock=clock), make_elector("c", clock=clock)
    assert leader.try_acquire_or_renew()
    assert not first.try_acquire_or_renew() and not second.try_acquire_or_renew()
    clock.advance(16)  # the leader is gone; both standbys may now take over
    results: dict[str, bool] = {}
    # c has read the Lease and is about to write it when b takes it first.
    counting(second).before_replace = lambda: results.setdefault("b", first.try_acquire_or_renew())
    results["c"] = second.try_acquire_or_renew()
    assert results == {"b": True, "c": False}
    spec = lease_spec(first)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_wait_for_leadership_polls_until_released_or_stopped(
    make_elector: Callable[..., LeaseElector],
) -> None:
    leader = make_elector("a", clock=Clock())
    standby = make_elector("b", clock=Clock(), lease_seconds=0.5)  # polls every 0.2s
    assert leader.try_acquire_or_renew()
    stop, outcome = threading.Event(), []
    waiter = threading.Thread(target=lambda: outcome.append(standby.wait_for_leadership(stop)))
    waiter.start()
    try:
        wait_for(lambda: counting(standby).calls >= 3, message="three attempts by the standby")
        assert outcome == []  # the clock has not moved: a held Lease stays held
        leader.release()
        waiter.join(10)
        assert outcome == [True]
    finally:
        stop.set()
        waiter.join(10)

    stop_early = threading.Event()
    other = make_elector("c", clock=Clock(), lease_seconds=0.5)
    stopped: list[bool] = []
    waiter = threading.Thread(target=lambda: stopped.append(other.wait_for_leadership(stop_early)))
    waiter.start()
    wait_for(lambda: counting(other).calls >= 2, message="the second standby to try")
    stop_early.set()
    waiter.join(10)
    assert stopped == [False]


def test_a_leader_renews_on_its_timer_and_never_loses_while_renewals_succeed(
    make_elector: Callable[..., LeaseElector],
) -> None:
    """Real time: a renewal is bounded by its deadline, so a clock moved by the test in the
    middle of one would rightly fail it. Four renewals take longer than the renew deadline
    (2s), so a leader that counted time rather than failed renewals would give up here."""
    leader = make_elector("a", clock=time.monotonic, lease_seconds=3.0)  # renews every 0.6s
    assert leader.try_acquire_or_renew()
    stop, lost = threading.Event(), threading.Event()
    renewals: list[str] = []

    def renewed_four_times() -> bool:
        renew_time = lease_spec(leader)["renewTime"]
        if not renewals or renewals[-1] != renew_time:
            renewals.append(renew_time)
        return len(renewals) >= 5

    thread = leader.keep_renewing(stop, lost.set)
    try:
        wait_for(renewed_four_times, timeout=20, message="four renewals")
        assert not lost.is_set()
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_leader_whose_lease_was_taken_gives_up_at_the_renew_deadline(
    make_elector: Callable[..., LeaseElector],
) -> None:
    clock = Clock()
    leader = make_elector("a", clock=clock, lease_seconds=0.3)  # deadline: 0.2s of its clock
    assert leader.try_acquire_or_renew()
    path = lease_path(leader.namespace, LEASE)
    leader.kube.merge_patch(path, {"spec": {"holderIdentity": "intruder"}}, resource="leases")
    stop, lost = threading.Event(), threading.Event()
    thread = leader.keep_renewing(stop, lost.set)
    try:
        calls = counting(leader).calls
        wait_for(
            lambda: counting(leader).calls >= calls + 3,
            message="three failed renewals",
        )
        assert not lost.is_set()  # its clock has not passed the deadline yet
        clock.advance(0.21)
        wait_for(lost.is_set, message="the leader to give up")
        thread.join(10)
        assert not thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
    assert lease_spec(leader)["holderIdentity"] == "intruder"


def test_a_leader_cut_off_from_the_api_server_gives_up_before_a_standby_may_take_over(
    private_control_plane: LocalControlPlane,
    apiserver_proxy: LoopbackProxy,
    proxied_kubeconfig: Path,
    make_elector: Callable[..., LeaseElector],
) -> None:
    """A renewal that hangs (a silent network) must not outlive the renew deadline.

    The standby (on the API server directly) may take the Lease once it has seen no renewal for
    ``leaseDurationSeconds``; the old leader must have stopped acting by then. Real time here:
    what is under test is a blocked request, which no injected clock can move.
    """
    lease_seconds = 1.5
    leader = make_elector(
        "a", clock=time.monotonic, lease_seconds=lease_seconds, config=proxied_kubeconfig
    )
    standby = make_elector(
        "b",
        clock=time.monotonic,
        lease_seconds=lease_seconds,
        config=private_control_plane.kubeconfig,
    )
    leader.namespace = standby.namespace = "default"
    assert leader.try_acquire_or_renew()
    stop, lost = threading.Event(), threading.Event()
    lost_at: list[float] = []
    thread = leader.keep_renewing(stop, lambda: (lost_at.append(time.monotonic()), lost.set()))
    try:
        assert not standby.try_acquire_or_renew()
        apiserver_proxy.cut(blackhole=True)
        cut_at = time.monotonic()
        taken = wait_for(
            standby.try_acquire_or_renew, timeout=30, interval=0.05, message="the standby"
        )
        taken_at = time.monotonic()
        assert taken
        assert lost_at and lost_at[0] <= taken_at, (
            f"the old leader still acted {taken_at - cut_at:.1f}s after the cut, when the "
            f"standby took the Lease (lost after {lost_at[0] - cut_at:.1f}s)"
            if lost_at
            else f"the standby took the Lease {taken_at - cut_at:.1f}s after the cut while "
            "the old leader was still waiting for its renewal"
        )
    finally:
        stop.set()
        apiserver_proxy.restore()
        thread.join(40)
