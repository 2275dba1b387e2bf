"""The webhook's Events: which answers post one, on which object, and that posting never gets in
the way of an answer (a full queue drops and counts; a failing API server is logged, not raised).

The app is driven through Flask's test client; the sink's thread is not started, so each test
calls ``step`` to drain the queue exactly when it wants to (no sleeps, no races).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mamori.events import EventCorrelator, EventWrite, Limits, Reporter
from mamori.policy import load_policies
from mamori.settings import load_settings
from mamori_webhook.app import create_app
from mamori_webhook.command import add_arguments, event_sink_factory
from mamori_webhook.event_sink import COALESCE_SECONDS, EventSink
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import StaticPolicySource
from mamori_webhook.settings import WebhookSettings
from tests.webhook.reviews import (
    TRUSTED_IMAGE,
    TRUSTED_REGISTRY,
    UNTRUSTED_IMAGE,
    pod_spec,
    policy_document,
    review,
    workload,
)

SECRET = "hunter2-do-not-leak"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class RecordingWriter:
    def __init__(self, error: Exception | None = None) -> None:
        self.writes: list[EventWrite] = []
        self.error = error

    def write(self, write: EventWrite) -> None:
        if self.error is not None:
            raise self.error
        self.writes.append(write)


def make_sink(
    writer: RecordingWriter,
    *,
    capacity: int = 100,
    clock: Clock | None = None,
    limits: Limits | None = None,
) -> EventSink:
    clock = clock or Clock()
    return EventSink(
        correlator=EventCorrelator(Reporter("mamori-webhook", "pod-0"), limits=limits, clock=clock),
        writer=writer,
        capacity=capacity,
        clock=clock,
    )


def client(sink: EventSink, enforcement: str = "Enforce") -> Any:
    settings = WebhookSettings(tls_cert=Path("unused.crt"), tls_key=Path("unused.key"))
    source = StaticPolicySource(
        load_policies(
            [
                policy_document(
                    "production", trustedRegistries=[TRUSTED_REGISTRY], enforcement=enforcement
                ),
            ]
        )
    )
    return create_app(
        settings, policy_source=source, metrics=AdmissionMetrics(), events=sink
    ).test_client()


def bad_pod(name: str = "web") -> dict[str, Any]:
    pod = workload("Pod", name=name, spec=pod_spec(TRUSTED_IMAGE, UNTRUSTED_IMAGE))
    pod["spec"]["containers"][0]["env"] = [{"name": "PASSWORD", "value": SECRET}]
    return pod


def answer(test_client: Any, document: dict[str, Any]) -> dict[str, Any]:
    response = test_client.post("/validate", json=document)
    assert response.status_code == 200
    return response.get_json()["response"]  # type: ignore[no-any-return]


def with_uid(obj: dict[str, Any], uid: str) -> dict[str, Any]:
    copied = copy.deepcopy(obj)
    copied["metadata"]["uid"] = uid
    return copied


def generated(owner: bool) -> dict[str, Any]:
    pod = bad_pod()
    del pod["metadata"]["name"]
    pod["metadata"]["generateName"] = "web-7d9f-"
    if owner:
        pod["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d9f",
                "uid": "rs-1",
                "controller": True,
            }
        ]
    return pod


def good_pod() -> dict[str, Any]:
    return workload("Pod", name="web")


# (review, policy enforcement, expected (reason, involvedObject) or None for no Event)
CASES = [
    pytest.param(
        review(bad_pod()),
        "Enforce",
        (
            "AdmissionDenied",
            {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "shop"},
        ),
        id="create-denied-no-uid-yet",
    ),
    pytest.param(
        review(
            with_uid(workload("Deployment", spec=pod_spec(UNTRUSTED_IMAGE)), "d-1"),
            operation="UPDATE",
            old=with_uid(workload("Deployment"), "d-1"),
        ),
        "Enforce",
        (
            "AdmissionDenied",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": "d-1",
                "namespace": "shop",
            },
        ),
        id="update-denied-with-uid",
    ),
    pytest.param(
        review(generated(owner=True)),
        "Enforce",
        (
            "AdmissionDenied",
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d9f",
                "uid": "rs-1",
                "namespace": "shop",
            },
        ),
        id="controller-pod-event-on-its-owner",
    ),
    pytest.param(
        review(generated(owner=False)),
        "Enforce",
        (
            "AdmissionDenied",
            {"apiVersion": "v1", "kind": "Pod", "name": "web-7d9f-", "namespace": "shop"},
        ),
        id="generate-name-without-owner",
    ),
    pytest.param(
        review(with_uid(bad_pod(), "p-1")),
        "Enforce",
        (
            "AdmissionDenied",
            {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "shop"},
        ),
        id="refused-create-uid-left-out",
    ),
    pytest.param(
        review(with_uid(bad_pod(), "p-1")),
        "Warn",
        (
            "AdmissionWarning",
            {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "p-1", "namespace": "shop"},
        ),
        id="warn-mode-warning-with-uid",
    ),
    pytest.param(review(bad_pod()), "Audit", None, id="audit-mode-silent"),
    pytest.param(review(good_pod()), "Enforce", None, id="allowed-silent"),
    pytest.param(review(bad_pod(), dry_run=True), "Enforce", None, id="dry-run-silent"),
    pytest.param(
        review(bad_pod(), operation="DELETE", old=bad_pod()),
        "Enforce",
        None,
        id="delete-not-judged",
    ),
]


@pytest.mark.parametrize(("document", "enforcement", "expected"), CASES)
def test_which_answers_post_an_event(
    document: dict[str, Any], enforcement: str, expected: tuple[str, dict[str, str]] | None
) -> None:
    writer = RecordingWriter()
    sink = make_sink(writer)
    response = answer(client(sink, enforcement), document)
    sink.step(0)
    if expected is None:
        assert writer.writes == []
        return
    [write] = writer.writes
    reason, involved = expected
    body = write.body
    assert (body["type"], body["reason"]) == ("Warning", reason)
    assert body["involvedObject"] == involved
    assert write.namespace == body["metadata"]["namespace"] == "shop"
    assert "[trusted-registry]" in body["message"]
    if reason == "AdmissionDenied":  # what kubectl printed, on one line
        head, item = response["status"]["message"].split("\n")
        assert body["message"] == f"{head} {item.removeprefix('- ')}"
    else:
        assert body["message"].startswith(
            'mamori warned about Pod "web": 1 violation of policy "production": '
            "[trusted-registry] spec.containers[1].image: "
        )
    assert SECRET not in str(body)


def test_repeated_denials_count_on_one_event() -> None:
    writer = RecordingWriter()
    clock = Clock()
    sink = make_sink(writer, clock=clock, limits=Limits(coalesce_seconds=COALESCE_SECONDS))
    test_client = client(sink)
    for _ in range(30):  # kubectl apply in a loop: a few per second
        answer(test_client, review(bad_pod()))
        sink.step(0)
        clock.now += 0.3
    clock.now += COALESCE_SECONDS
    sink.step(0)
    creates = [w for w in writer.writes if w.is_create]
    assert len(creates) == 1
    assert {w.name for w in writer.writes} == {creates[0].name}
    assert writer.writes[-1].patch is not None and writer.writes[-1].patch["count"] == 30
    assert len(writer.writes) <= 10  # repeats within a second are summed into one PATCH


def test_a_denial_loop_is_rate_limited_but_fully_counted() -> None:
    writer = RecordingWriter()
    clock = Clock()
    sink = make_sink(writer, clock=clock, limits=Limits(coalesce_seconds=COALESCE_SECONDS))
    test_client = client(sink)
    for _ in range(100):  # a controller retrying every 2 s
        answer(test_client, review(bad_pod()))
        sink.step(0)
        clock.now += 2
    assert len(writer.writes) == 25  # the burst
    assert writer.writes[-1].body["count"] == 25
    clock.now += 300  # one token back
    sink.step(0)
    assert len(writer.writes) == 26
    assert writer.writes[-1].patch is not None and writer.writes[-1].patch["count"] == 100


def test_a_full_queue_drops_counts_and_logs_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = RecordingWriter()
    clock = Clock()
    sink = make_sink(writer, capacity=2, clock=clock)
    test_client = client(sink)
    seen: list[str] = []
    sink.count_outcomes(seen.append)
    with caplog.at_level(logging.WARNING, logger="mamori_webhook.events"):
        for index in range(5):
            assert answer(test_client, review(bad_pod(f"web-{index}")))["allowed"] is False
        clock.now += 61
        answer(test_client, review(bad_pod("late")))
    assert sink.dropped == 4
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    full = "the queue of 2 is full (the API server is slow or unreachable)"
    assert drops == [
        f"dropped 1 Kubernetes Event(s): {full}",
        f"dropped 3 Kubernetes Event(s): {full}",
    ]
    sink.step(0)
    assert [w.body["involvedObject"]["name"] for w in writer.writes] == ["web-0", "web-1"]
    assert seen == ["dropped"] * 4 + ["posted", "posted"]


def test_a_failing_api_server_never_changes_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    writer = RecordingWriter(error=RuntimeError("connection refused"))
    sink = make_sink(writer)
    test_client = client(sink)
    with caplog.at_level(logging.WARNING, logger="mamori_webhook.events"):
        for name in ("a", "b", "c"):
            assert answer(test_client, review(bad_pod(name)))["allowed"] is False
            sink.step(0)
    assert sink.failed == 3
    failures = [r.getMessage() for r in caplog.records if "could not post" in r.getMessage()]
    assert len(failures) == 1  # once per interval, not once per Event
    assert "RuntimeError: connection refused" in failures[0]


def test_a_broken_hook_never_changes_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(EventSink):
        def report(self, request: Any, verdict: Any) -> None:
            raise RuntimeError("bug")

    sink = Broken(
        correlator=EventCorrelator(Reporter("mamori-webhook", "pod-0")),
        writer=RecordingWriter(),
    )
    with caplog.at_level(logging.ERROR, logger="mamori_webhook.admission"):
        response = answer(client(sink), review(bad_pod()))
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert any("could not queue the Events" in r.getMessage() for r in caplog.records)


def test_the_thread_writes_what_was_queued_before_stop() -> None:
    writer = RecordingWriter()
    sink = make_sink(writer)
    test_client = client(sink)
    sink.start()
    answer(test_client, review(bad_pod()))
    sink.stop(timeout=10)
    assert [w.body["reason"] for w in writer.writes] == ["AdmissionDenied"]


# -- wiring: `mamori webhook --events/--no-events` --------------------------------------------


def settings_for(
    tmp_path: Path, *, events: bool, kubeconfig: Path | None = None
) -> WebhookSettings:
    return WebhookSettings(
        tls_cert=tmp_path / "tls.crt",
        tls_key=tmp_path / "tls.key",
        policy=tmp_path / "policy.yaml",
        kubeconfig=kubeconfig,
        events=events,
    )


def kubeconfig_file(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def test_no_events_builds_no_sink(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, events=False, kubeconfig=kubeconfig_file(tmp_path))
    assert event_sink_factory(settings, {}) is None


def test_a_policy_file_without_a_cluster_turns_events_off_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"KUBECONFIG": str(tmp_path / "missing")}
    with caplog.at_level(logging.WARNING, logger="mamori_webhook.command"):
        assert event_sink_factory(settings_for(tmp_path, events=True), environ) is None
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "Kubernetes Events are off: no cluster to post them to"
    ]


def test_events_go_where_the_kubeconfig_says(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, events=True, kubeconfig=kubeconfig_file(tmp_path))
    factory = event_sink_factory(settings, {})
    assert factory is not None
    sink = factory()
    assert isinstance(sink, EventSink)
    assert sink.written == sink.failed == sink.dropped == 0


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        pytest.param([], {}, True, id="on-by-default"),
        pytest.param(["--no-events"], {}, False, id="flag-off"),
        pytest.param([], {"MAMORI_EVENTS": "false"}, False, id="env-off-as-the-chart-sets-it"),
    ],
)
def test_the_switch(
    tmp_path: Path, argv: list[str], environ: dict[str, str], expected: bool
) -> None:
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).touch()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    files = ["--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key")]
    args = parser.parse_args([*files, *argv])
    assert load_settings(WebhookSettings, args, environ).events is expected
