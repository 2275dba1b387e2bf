"""The liveness probe: standbys are alive, a leader is alive while housekeeping makes passes."""

from __future__ import annotations

import urllib.error
import urllib.request

from mamori_operator.health import HealthServer, Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_standby_then_leading_then_stalled() -> None:
    clock = Clock()
    liveness = Liveness(stall_after=60, clock=clock)
    assert liveness() == (True, "standby: waiting for the leader Lease")
    passes = [0]
    liveness.leading(lambda: passes[0])
    assert liveness()[0]
    clock.now += 30
    passes[0] = 5
    assert liveness()[0]
    clock.now += 61
    healthy, text = liveness()
    assert not healthy and "no pass for 61s" in text
    passes[0] = 6
    assert liveness()[0]


def test_served_over_http_on_loopback() -> None:
    verdict = [(True, "fine")]
    server = HealthServer(0, lambda: verdict[0], host="127.0.0.1").start()
    try:
        url = f"http://127.0.0.1:{server.port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert (reply.status, reply.read()) == (200, b"fine\n")
        verdict[0] = (False, "stuck")
        try:
            urllib.request.urlopen(url, timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as error:
            assert (error.code, error.read()) == (503, b"stuck\n")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=5)
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as error:
            assert error.code == 404
    finally:
        server.stop()
