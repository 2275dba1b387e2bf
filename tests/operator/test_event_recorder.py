"""The operator's Events: a repeat held back by the object's rate limit is written by the
housekeeper's flush once a token is back, not only when some later Event happens."""

from __future__ import annotations

from typing import Any

from mamori.events import Limits, ObjectRef
from mamori_operator.api.events import EventRecorder
from mamori_operator.metrics import Metrics

POLICY = ObjectRef(api_version="mamori.io/v1alpha1", kind="ClusterSecurityPolicy", name="p")


class RecordingKube:
    def __init__(self) -> None:
        self.metrics = Metrics()
        self.writes: list[tuple[str, str, dict[str, Any]]] = []

    def create(self, path: str, body: dict[str, Any], *, resource: str) -> dict[str, Any]:
        self.writes.append(("create", path, body))
        return body

    def merge_patch(self, path: str, patch: dict[str, Any], *, resource: str) -> dict[str, Any]:
        self.writes.append(("patch", path, patch))
        return patch


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def recorder(kube: RecordingKube, clock: Clock) -> EventRecorder:
    limits = Limits(burst=1, refill_seconds=60.0)
    return EventRecorder(kube, instance="test", limits=limits, clock=clock)  # type: ignore[arg-type]


def test_a_held_back_repeat_is_written_by_the_flush_once_a_token_is_back() -> None:
    kube, clock = RecordingKube(), Clock()
    events = recorder(kube, clock)
    events.warning(POLICY, reason="InvalidSpec", message="spec.x: bad")
    events.warning(POLICY, reason="InvalidSpec", message="spec.x: bad")  # no token left
    assert [verb for verb, _, _ in kube.writes] == ["create"]

    clock.now += 30  # half a refill: still nothing to write
    assert events.flush() == 0
    clock.now += 30
    assert events.flush() == 1
    verb, path, patch = kube.writes[-1]
    assert (verb, path.rsplit("/", 1)[0]) == ("patch", "/api/v1/namespaces/default/events")
    assert patch["count"] == 2
    assert events.flush() == 0  # written once


def test_a_flush_with_nothing_held_back_writes_nothing() -> None:
    kube, clock = RecordingKube(), Clock()
    events = recorder(kube, clock)
    events.normal(POLICY, reason="Ready", message="ok")
    clock.now += 3600
    assert events.flush() == 0
    assert len(kube.writes) == 1
