"""The webhook's list-and-watch thread (mamori_webhook/watch.py): what it asks for, when it lists
again, how long it backs off, and that it stops. Scripted list functions for the protocol; one test
on a real API server (watch cache off) for 410 Gone after an etcd compaction.

Most tests keep the backoff waits real but tiny (``Backoff(initial=0.01, maximum=0.04)``) and
read the delays it chose from its log; ``wait=`` injects a recorder where the delays are the point.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest

from mamori_dev.controlplane import LocalControlPlane
from mamori_webhook.watch import Backoff, Item, ListWatch
from tests.cluster_fixtures import Kubectl
from tests.helpers import wait_for

FAST = Backoff(initial=0.01, maximum=0.04)


class Response:
    """A urllib3 response as ``_preload_content=False`` returns it: a body, or a stream."""

    def __init__(self, *, data: bytes = b"", chunks: list[bytes] | None = None) -> None:
        self.data = data
        self.chunks = chunks or []
        self.closed = threading.Event()
        self.hold = False  # after its chunks, block until closed (a watch still open)

    def stream(self, amt: int | None = None) -> Iterator[bytes]:
        yield from self.chunks
        if self.hold:
            self.closed.wait(30)

    def shutdown(self) -> None:
        self.closed.set()

    def close(self) -> None:
        self.closed.set()

    def release_conn(self) -> None:
        return None


def page(items: list[Item], version: str, token: str = "") -> Response:
    metadata = {"resourceVersion": version, **({"continue": token} if token else {})}
    return Response(data=json.dumps({"items": items, "metadata": metadata}).encode())


def events(*pairs: tuple[str, Mapping[str, Any]]) -> list[bytes]:
    return [json.dumps({"type": kind, "object": obj}).encode() + b"\n" for kind, obj in pairs]


def obj(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


GONE = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}


@dataclass
class Script:
    """The API server's side: one answer per call, in order; the calls are recorded."""

    answers: list[Callable[[], Response]]
    calls: list[dict[str, Any]] = field(default_factory=list)
    exhausted: threading.Event = field(default_factory=threading.Event)

    def __call__(self, **kwargs: Any) -> Response:
        self.calls.append(kwargs)
        if not self.answers:
            self.exhausted.set()
            held = Response()
            held.hold = True  # the last watch stays open until stop()
            return held
        return self.answers.pop(0)()

    def watches(self) -> list[str]:
        return [call["resource_version"] for call in self.calls if call.get("watch")]


def answer(response: Response) -> Callable[[], Response]:
    return lambda: response


def fail(error: Exception) -> Callable[[], Response]:
    def raise_it() -> Response:
        raise error

    return raise_it


@dataclass
class Copy:
    """The local copy ListWatch feeds, as the webhook's policy source keeps it."""

    items: dict[str, Item] = field(default_factory=dict)
    replaced: int = 0
    events: list[tuple[str, str]] = field(default_factory=list)
    fail_next_event: bool = False

    def replace(self, items: list[Item]) -> None:
        self.items = {item["metadata"]["name"]: item for item in items}
        self.replaced += 1

    def event(self, kind: str, item: Item) -> None:
        if self.fail_next_event:
            self.fail_next_event = False
            raise KeyError("a callback bug")
        name = item["metadata"]["name"]
        self.events.append((kind, name))
        if kind == "DELETED":
            self.items.pop(name, None)
        else:
            self.items[name] = item


@pytest.fixture
def run() -> Iterator[Callable[[Script], tuple[ListWatch, Copy]]]:
    started: list[ListWatch] = []

    def start(script: Script) -> tuple[ListWatch, Copy]:
        copy = Copy()
        watch = ListWatch(
            name="things",
            list_function=script,
            on_replace=copy.replace,
            on_event=copy.event,
            watch_timeout=5,
            backoff=FAST,
        )
        watch.start()
        started.append(watch)
        wait_for(script.exhausted.is_set, timeout=10, message="the script to be played out")
        return watch, copy

    yield start
    for watch in started:
        watch.stop()
        assert watch._thread is not None and not watch._thread.is_alive()


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        float(record.args[2])  # type: ignore[index]
        for record in caplog.records
        if record.name == "mamori_webhook.watch" and "retrying in" in record.msg
    ]


def test_lists_then_watches_and_resumes_from_the_last_version_seen(
    run: Callable[[Script], tuple[ListWatch, Copy]],
) -> None:
    script = Script(
        [
            answer(page([obj("a", "5"), obj("b", "7")], "10")),
            answer(
                Response(
                    chunks=events(
                        ("ADDED", obj("c", "11")),
                        ("BOOKMARK", obj("", "13")),
                        ("MODIFIED", obj("a", "12")),
                    )
                )
            ),
            answer(Response(chunks=events(("DELETED", obj("b", "14"))))),
        ]
    )
    watch, copy = run(script)
    assert script.watches() == ["10", "12", "14"]  # a normal end resumes; no list in between
    assert watch.lists == 1 and watch.watches == 3
    assert copy.replaced == 1
    assert copy.events == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert sorted(copy.items) == ["a", "c"]
    first_watch = script.calls[1]
    assert first_watch["allow_watch_bookmarks"] is True and first_watch["timeout_seconds"] == 5


def test_a_bookmark_moves_the_version_without_an_event(
    run: Callable[[Script], tuple[ListWatch, Copy]],
) -> None:
    script = Script(
        [
            answer(page([], "10")),
            answer(Response(chunks=events(("BOOKMARK", obj("", "20"))))),
        ]
    )
    _, copy = run(script)
    assert script.watches() == ["10", "20"] and copy.events == []


def test_410_gone_lists_again_at_once_and_the_new_list_replaces_the_copy_whole(
    run: Callable[[Script], tuple[ListWatch, Copy]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mamori_webhook.watch")
    script = Script(
        [
            answer(page([obj("a", "5"), obj("b", "6")], "10")),
            answer(Response(chunks=events(("ERROR", GONE)))),
            answer(page([obj("a", "5")], "30")),  # b was deleted while the watch was away
        ]
    )
    watch, copy = run(script)
    assert watch.lists == 2 and copy.replaced == 2
    assert sorted(copy.items) == ["a"]  # no DELETED event ever came; the re-list removed b
    assert script.watches() == ["10", "30"]
    assert retry_delays(caplog) == []  # an expiry is no failure: no backoff


def test_a_list_that_is_already_too_old_backs_off_instead_of_spinning() -> None:
    """410 on every watch right after its list: the first re-list is immediate, then backoff."""
    gone = [answer(Response(chunks=events(("ERROR", GONE))))]
    lists = [answer(page([obj("a", str(n))], str(n))) for n in range(10, 14)]
    script = Script([step for pair in zip(lists, gone * 4, strict=True) for step in pair])
    waits: list[float] = []
    copy = Copy()
    watch = ListWatch(
        name="things",
        list_function=script,
        on_replace=copy.replace,
        on_event=copy.event,
        backoff=FAST,
        wait=waits.append,
    )
    watch.start()
    try:
        wait_for(script.exhausted.is_set, timeout=10, message="the script to be played out")
    finally:
        watch.stop()
    assert watch.lists == 4
    # The 1st expiry re-lists at once, each bare one after it waits longer (what follows the
    # script's end is a failed list, which backs off too).
    assert waits[:3] == [0.01, 0.02, 0.04]


def test_failures_back_off_doubling_to_the_cap_and_reset_after_a_good_list(
    run: Callable[[Script], tuple[ListWatch, Copy]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mamori_webhook.watch")
    refused = ConnectionRefusedError("connection refused")
    script = Script(
        [
            *[fail(refused)] * 4,
            answer(page([obj("a", "5")], "10")),
            fail(refused),  # the watch request fails: back off from the start again
            answer(page([obj("a", "5")], "11")),
        ]
    )
    watch, copy = run(script)
    assert retry_delays(caplog) == [0.01, 0.02, 0.04, 0.04, 0.01]
    assert watch.lists == 2 and copy.replaced == 2


def test_a_watch_error_other_than_410_backs_off_and_lists_again(
    run: Callable[[Script], tuple[ListWatch, Copy]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mamori_webhook.watch")
    internal = {"kind": "Status", "code": 500, "message": "etcd event received with PrevKv=nil"}
    script = Script(
        [
            answer(page([], "10")),
            answer(Response(chunks=events(("ERROR", internal)))),
            answer(page([], "12")),
        ]
    )
    watch, _ = run(script)
    assert watch.lists == 2 and retry_delays(caplog) == [0.01]
    assert "watch error 500" in caplog.text


def test_a_callback_that_raises_costs_a_re_list_not_the_thread(
    run: Callable[[Script], tuple[ListWatch, Copy]],
) -> None:
    copy_holder: list[Copy] = []
    script = Script(
        [
            answer(page([obj("a", "5")], "10")),
            answer(Response(chunks=events(("ADDED", obj("b", "11"))))),
            answer(page([obj("a", "5"), obj("b", "11")], "11")),
        ]
    )
    original = script.answers[1]

    def failing_event_stream() -> Response:
        copy_holder[0].fail_next_event = True
        return original()

    script.answers[1] = failing_event_stream
    watch = ListWatch(
        name="things",
        list_function=script,
        on_replace=lambda items: copy_holder[0].replace(items),
        on_event=lambda kind, item: copy_holder[0].event(kind, item),
        backoff=FAST,
    )
    copy_holder.append(Copy())
    watch.start()
    try:
        wait_for(script.exhausted.is_set, timeout=10, message="the script to be played out")
        assert watch.lists == 2 and sorted(copy_holder[0].items) == ["a", "b"]
    finally:
        watch.stop()
    assert watch._thread is not None and not watch._thread.is_alive()


def test_pages_are_followed_and_delivered_as_one_list(
    run: Callable[[Script], tuple[ListWatch, Copy]],
) -> None:
    script = Script(
        [
            answer(page([obj("a", "1")], "", token="next-1")),
            answer(page([obj("b", "2")], "", token="next-2")),
            answer(page([obj("c", "3")], "9")),
        ]
    )
    watch, copy = run(script)
    assert [call.get("_continue") for call in script.calls[:3]] == [None, "next-1", "next-2"]
    assert all(call["limit"] == 500 for call in script.calls[:3])
    assert copy.replaced == 1 and sorted(copy.items) == ["a", "b", "c"]
    assert script.watches() == ["9"] and watch.synced.is_set()


def test_events_split_across_chunks_are_put_back_together(
    run: Callable[[Script], tuple[ListWatch, Copy]],
) -> None:
    stream = b"".join(events(("ADDED", obj("b", "11")), ("ADDED", obj("c", "12"))))
    chunks = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    script = Script([answer(page([], "10")), answer(Response(chunks=chunks))])
    _, copy = run(script)
    assert copy.events == [("ADDED", "b"), ("ADDED", "c")]
    assert script.watches() == ["10", "12"]


def test_stop_interrupts_a_watch_that_is_waiting_for_events() -> None:
    script = Script([answer(page([], "10"))])
    watch = ListWatch(
        name="things", list_function=script, on_replace=lambda _: None, on_event=lambda *_: None
    )
    watch.start()
    wait_for(script.exhausted.is_set, message="the watch to be open")
    wait_for(lambda: watch._response is not None, message="the watch to be read")
    watch.stop(timeout=5)
    assert watch._thread is not None and not watch._thread.is_alive()


# -- on the real API server ------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("private_apiserver_args", [("--watch-cache=false",)])
def test_after_a_compaction_the_resumed_watch_gets_410_and_lists_again(
    private_control_plane: LocalControlPlane, private_kubectl: Kubectl
) -> None:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(private_control_plane.kubeconfig), client_configuration=configuration
    )
    copy = Copy()
    with kubernetes.client.ApiClient(configuration) as api:
        core = kubernetes.client.CoreV1Api(api)
        watch = ListWatch(
            name="configmaps",
            list_function=functools.partial(core.list_namespaced_config_map, "default"),
            on_replace=copy.replace,
            on_event=copy.event,
            watch_timeout=1,  # each watch ends after 1s and resumes from the last version
            backoff=FAST,
        )
        watch.start()
        try:
            wait_for(watch.synced.is_set, timeout=30, message="the first list")
            private_kubectl("create", "configmap", "one")
            wait_for(lambda: "one" in copy.items, timeout=30, message="the event for one")
            assert watch.lists == 1
            private_control_plane.compact_etcd()
            wait_for(lambda: watch.lists == 2, timeout=30, message="a re-list after 410")
            private_kubectl("create", "configmap", "two")
            wait_for(lambda: "two" in copy.items, timeout=30, message="events after the re-list")
            assert "one" in copy.items
        finally:
            watch.stop()
    assert watch._thread is not None and not watch._thread.is_alive()
