"""The Event correlator shared by the webhook and the operator: counting, combining, rate limits.

Each scenario is a list of steps on a fake clock: an occurrence (or a call to ``due()``) and the
writes it must produce, summarised as (verb, message, count). No sleeps: time only moves when a
step says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mamori.events import (
    COMBINED_PREFIX,
    NOTE_MAX_BYTES,
    EventCorrelator,
    EventType,
    EventWrite,
    Limits,
    ObjectRef,
    Occurrence,
    Reporter,
    TokenBucket,
    event_name,
    note,
)

REPORTER = Reporter("mamori-test", "pod-0")
WEB = ObjectRef("apps/v1", "Deployment", "web", namespace="shop")
API = ObjectRef("apps/v1", "Deployment", "api", namespace="shop")
DUE = "due"


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def denied(
    message: str = "[privileged] spec.containers[0]: no", subject: ObjectRef = WEB
) -> Occurrence:
    return Occurrence(
        subject=subject, type=EventType.WARNING, reason="AdmissionDenied", message=message
    )


def summary(writes: list[EventWrite]) -> list[tuple[str, str, int]]:
    return [
        ("create" if w.is_create else "patch", str(w.body["message"]), int(w.body["count"]))
        for w in writes
    ]


@dataclass(frozen=True)
class Step:
    what: Occurrence | str  # an occurrence, or DUE for a call to due()
    expect: list[tuple[str, str, int]]
    after: float = 0.0  # seconds the clock moves before the step


M = "[privileged] spec.containers[0]: no"
OTHER = "[run-as-non-root] spec.securityContext.runAsNonRoot: must be true"

SCENARIOS = [
    pytest.param(
        Limits(),
        [
            Step(denied(), [("create", M, 1)]),
            Step(denied(), [("patch", M, 2)], after=1),
            Step(denied(), [("patch", M, 3)], after=1),
        ],
        id="same-event-count-grows",
    ),
    pytest.param(
        Limits(),
        [
            Step(denied(), [("create", M, 1)]),
            Step(denied(OTHER), [("create", OTHER, 1)]),
            Step(denied(), [("patch", M, 2)]),
        ],
        id="different-message-new-event",
    ),
    pytest.param(
        Limits(),
        [
            Step(denied(), [("create", M, 1)]),
            Step(denied(subject=API), [("create", M, 1)]),
        ],
        id="different-object-new-event",
    ),
    pytest.param(
        Limits(burst=2, refill_seconds=300),
        [
            Step(denied(), [("create", M, 1)]),
            Step(denied(), [("patch", M, 2)]),
            Step(denied(), []),  # burst exhausted: counted, not written
            Step(denied(), []),
            Step(DUE, [], after=299),  # no token yet
            Step(DUE, [("patch", M, 4)], after=1),  # refilled: the whole count at once
            Step(DUE, []),  # nothing left waiting
        ],
        id="burst-exhausted-then-refill-writes-the-count",
    ),
    pytest.param(
        Limits(burst=1, refill_seconds=300),
        [
            Step(denied(), [("create", M, 1)]),
            Step(denied(subject=API), [("create", M, 1)]),  # a bucket per object
            Step(denied(OTHER), []),  # same object, other message: same bucket
            Step(denied(OTHER), [("create", OTHER, 2)], after=300),
        ],
        id="rate-limit-is-per-object",
    ),
    pytest.param(
        Limits(coalesce_seconds=1.0),
        [
            Step(denied(), [("create", M, 1)]),
            Step(denied(), [], after=0.2),
            Step(denied(), [], after=0.2),
            Step(DUE, [], after=0.2),
            Step(DUE, [("patch", M, 3)], after=0.4),
            Step(denied(), [("patch", M, 4)], after=1.0),
        ],
        id="coalesced-repeats-one-patch",
    ),
    pytest.param(
        Limits(similar_limit=3),
        [
            Step(denied("a"), [("create", "a", 1)]),
            Step(denied("b"), [("create", "b", 1)]),
            Step(denied("c"), [("create", COMBINED_PREFIX + "c", 1)]),
            Step(denied("d"), [("patch", COMBINED_PREFIX + "d", 2)]),
            Step(denied("a"), [("patch", "a", 2)]),  # a message seen before keeps its Event
        ],
        id="similar-messages-combined",
    ),
    pytest.param(
        Limits(similar_limit=3, similar_window=600),
        [
            Step(denied("a"), [("create", "a", 1)]),
            Step(denied("b"), [("create", "b", 1)]),
            Step(denied("c"), [("create", "c", 1)], after=601),  # a new window
        ],
        id="similar-window-expires",
    ),
    pytest.param(
        Limits(max_tracked=1),
        [
            Step(denied(), [("create", M, 1)]),
            Step(denied(OTHER), [("create", OTHER, 1)]),
            Step(denied(), [("create", M, 1)]),  # forgotten: a new Event
        ],
        id="bounded-memory-forgets-oldest",
    ),
]


@pytest.mark.parametrize(("limits", "steps"), SCENARIOS)
def test_correlation(limits: Limits, steps: list[Step]) -> None:
    clock = FakeClock()
    correlator = EventCorrelator(REPORTER, limits=limits, clock=clock)
    for number, step in enumerate(steps, 1):
        clock.now += step.after
        writes = correlator.due() if step.what == DUE else correlator.observe(step.what)  # type: ignore[arg-type]
        assert summary(writes) == step.expect, f"step {number}"


def test_a_repeat_patches_the_event_it_created() -> None:
    clock = FakeClock()
    correlator = EventCorrelator(REPORTER, clock=clock)
    [created] = correlator.observe(denied())
    clock.now += 42
    [patched] = correlator.observe(denied())
    assert (patched.namespace, patched.name) == (created.namespace, created.name)
    assert patched.patch == {
        "count": 2,
        "lastTimestamp": "2023-11-14T22:14:02Z",
        "message": M,
    }
    assert (
        patched.body["firstTimestamp"] == created.body["firstTimestamp"] == "2023-11-14T22:13:20Z"
    )


def test_the_rate_limited_are_counted_and_their_wait_is_known() -> None:
    clock = FakeClock()
    correlator = EventCorrelator(REPORTER, limits=Limits(burst=1, refill_seconds=300), clock=clock)
    correlator.observe(denied())
    assert correlator.seconds_until_due() is None
    correlator.observe(denied())
    correlator.observe(denied())
    assert correlator.rate_limited == 2
    clock.now += 100
    assert correlator.seconds_until_due() == pytest.approx(200)


def test_body_is_a_core_v1_event_on_the_object() -> None:
    [write] = EventCorrelator(REPORTER, clock=FakeClock()).observe(denied())
    body = write.body
    assert body["apiVersion"] == "v1" and body["kind"] == "Event"
    assert body["metadata"]["namespace"] == "shop"
    assert body["metadata"]["name"].startswith("web.")
    assert body["involvedObject"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "namespace": "shop",
    }
    assert (body["type"], body["reason"], body["count"]) == ("Warning", "AdmissionDenied", 1)
    assert body["source"] == {"component": "mamori-test"}
    assert (body["reportingComponent"], body["reportingInstance"]) == ("mamori-test", "pod-0")


def test_cluster_scoped_objects_get_events_in_default() -> None:
    policy = ObjectRef("mamori.io/v1alpha1", "ClusterSecurityPolicy", "baseline", uid="u-1")
    [write] = EventCorrelator(REPORTER, clock=FakeClock()).observe(
        Occurrence(subject=policy, type=EventType.WARNING, reason="InvalidSpec", message="bad")
    )
    assert write.namespace == write.body["metadata"]["namespace"] == "default"
    assert "namespace" not in write.body["involvedObject"]
    assert write.body["involvedObject"]["uid"] == "u-1"


def test_two_events_at_the_same_instant_get_different_names() -> None:
    correlator = EventCorrelator(REPORTER, clock=FakeClock())
    [first] = correlator.observe(denied())
    [second] = correlator.observe(denied(OTHER))
    assert first.name != second.name


@pytest.mark.parametrize(
    ("name", "expected_prefix"),
    [
        pytest.param("web", "web", id="plain"),
        pytest.param("web-7d9f-", "web-7d9f", id="generate-name-dash-stripped"),
        pytest.param("Web_App", "web-app", id="not-a-dns-name"),
        pytest.param("x" * 300, "x" * (253 - 17), id="long-cut-to-253"),
        pytest.param("---", "object", id="nothing-left"),
    ],
)
def test_event_names_are_dns_subdomains(name: str, expected_prefix: str) -> None:
    stamp = 0x179B4A6C2E5F0000
    result = event_name(ObjectRef("v1", "Pod", name, namespace="ns"), stamp)
    assert result == f"{expected_prefix}.{stamp:x}"
    assert len(result) <= 253


ITEMS = [
    f"[rule-{i}] spec.template.spec.containers[{i}].securityContext: must be set" for i in range(40)
]
DENIAL = 'mamori denied Deployment "web": 40 violations:\n' + "\n".join(f"- {i}" for i in ITEMS)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param("short", "short", id="one-line-unchanged"),
        pytest.param("é" * 512, "é" * 512, id="exactly-the-limit-in-bytes"),
        pytest.param(
            'mamori denied Pod "web": 2 violations:\n- [a] x: no\n- [b] y: no',
            'mamori denied Pod "web": 2 violations: [a] x: no; [b] y: no',
            id="lines-joined-for-kubectl-tables",
        ),
        pytest.param(
            DENIAL,
            'mamori denied Deployment "web": 40 violations: '
            + "; ".join(ITEMS[:13])
            + "; … and 27 more",
            id="whole-items-and-how-many-were-cut",
        ),
        pytest.param("é" * 600, "é" * 510 + "…", id="one-long-line-cut-at-a-character"),
        pytest.param(
            "header\n- " + "x" * 2000 + "\n- y",
            ("header " + "x" * 2000)[:1021] + "…",
            id="first-item-too-long-cut-at-a-character",
        ),
    ],
)
def test_note(message: str, expected: str) -> None:
    result = note(message)
    assert result == expected
    assert len(result.encode()) <= NOTE_MAX_BYTES
    assert "\n" not in result


def test_token_bucket_refills_one_token_per_period_up_to_burst() -> None:
    bucket = TokenBucket(burst=2, refill_seconds=10, now=0)
    assert [bucket.take(0), bucket.take(0), bucket.take(0)] == [True, True, False]
    assert bucket.next_token_at(5) == pytest.approx(10)
    assert bucket.take(10)
    assert not bucket.take(10)
    assert [bucket.take(1000), bucket.take(1000), bucket.take(1000)] == [True, True, False]
