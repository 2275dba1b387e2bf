"""Pods through the operator's own list and watch (state/pod_feed.py, state/workqueue.py).

The feed is driven here by a scripted stand-in for the API (pages of a list, then watch
events); what is under test is what reaches the view and the work queue. The real API server's
side (410 Gone after compaction, a cut link) is proven in tests/integration.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from mamori_operator.api.kube import KubeError
from mamori_operator.metrics import Metrics
from mamori_operator.state.cluster import ClusterState
from mamori_operator.state.pod_feed import PodFeed
from mamori_operator.state.pods import pod_record
from mamori_operator.state.workqueue import KeyQueue
from tests.helpers import wait_for

DIGEST = "sha256:" + "a" * 64


def pod(
    name: str, version: str, *, namespace: str = "shop", phase: str = "Running"
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": version,
        },
        "spec": {"containers": [{"name": "app", "image": f"registry.example/app@{DIGEST}"}]},
        "status": {"phase": phase},
    }


class ScriptedKube:
    """Answers one list (``pages``) and then one watch per script in ``watches``."""

    def __init__(
        self,
        pages: Sequence[Sequence[dict[str, Any]]],
        watches: Sequence[Sequence[dict[str, Any]]] = (),
        *,
        version: str = "100",
    ) -> None:
        self.pages = pages
        self.version = version
        self.watches = list(watches)
        self.watched_from: list[str] = []
        self.lists = 0

    def list_pages(
        self, path: str, *, resource: str, limit: int = 500, label_selector: str | None = None
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        assert (path, resource) == ("/api/v1/pods", "pods")
        self.lists += 1
        for page in self.pages:
            yield list(page), self.version

    def watch(
        self, path: str, *, resource_version: str, timeout: float, opened: Any = None
    ) -> Iterator[dict[str, Any]]:
        self.watched_from.append(resource_version)
        if not self.watches:
            raise KubeError(0, "Unreachable", "script exhausted")
        yield from self.watches.pop(0)


def feed(kube: ScriptedKube, state: ClusterState | None = None) -> PodFeed:
    return PodFeed(
        kube=kube,  # type: ignore[arg-type]
        state=state or ClusterState(),
        scanner=None,  # type: ignore[arg-type]  # no worker runs in these tests
        metrics=Metrics(),
        synced=threading.Event(),
        workers=0,
        watch_timeout=60,
    )


def queued(pods: PodFeed) -> list[tuple[str, str]]:
    keys = []
    while (key := pods.queue.get(timeout=0)) is not None:
        keys.append(key)
        pods.queue.done(key)
    return sorted(keys)


def event_count(pods: PodFeed) -> float:
    return float(pods.metrics.pod_events._value.get())


def test_a_list_fills_the_view_page_by_page_and_queues_every_running_pod() -> None:
    kube = ScriptedKube([[pod("a", "5"), pod("b", "6")], [pod("done", "7", phase="Succeeded")]])
    pods = feed(kube)

    assert pods.relist() == "100"

    assert sorted(pods.state.pods) == [("shop", "a"), ("shop", "b")]
    assert pods.state.pods_using(DIGEST) == [("shop", "a"), ("shop", "b")]
    assert queued(pods) == [("shop", "a"), ("shop", "b")]
    assert event_count(pods) == 3  # a listed pod counts as an event, like kopf's listing


def test_a_relist_drops_pods_it_did_not_list_and_queues_only_what_changed() -> None:
    state = ClusterState()
    for name in ("kept", "changed", "deleted-in-the-gap"):
        state.set_pod(pod_record(pod(name, "5")))
    pods = feed(ScriptedKube([[pod("kept", "5"), pod("changed", "9"), pod("new", "9")]]), state)

    pods.relist()

    assert sorted(name for _, name in state.pods) == ["changed", "kept", "new"]
    assert state.pods_using(DIGEST) == [("shop", "changed"), ("shop", "kept"), ("shop", "new")]
    assert state.pods_in("shop") == state.pods_using(DIGEST)
    assert queued(pods) == [("shop", "changed"), ("shop", "new")]


def test_a_listed_pod_older_than_our_own_patch_does_not_undo_it() -> None:
    state = ClusterState()
    state.set_pod(pod_record(pod("a", "5")))
    state.update_pod_annotations(
        ("shop", "a"), {"mamori.io/scan-status": "clean"}, resource_version="12"
    )
    pods = feed(ScriptedKube([[pod("a", "8")]]), state)  # read before our patch landed

    pods.relist()

    record = state.pod(("shop", "a"))
    assert record is not None
    assert (record.resource_version, record.annotations) == (
        "12",
        {"mamori.io/scan-status": "clean"},
    )
    assert queued(pods) == []


@pytest.mark.parametrize(
    ("event", "expected_pods", "expected_queue"),
    [
        pytest.param("ADDED", ["a", "b"], [("shop", "b")], id="added-is-stored-and-queued"),
        pytest.param("MODIFIED", ["a", "b"], [("shop", "b")], id="modified-is-stored-and-queued"),
        pytest.param("DELETED", ["a"], [], id="deleted-is-forgotten"),
    ],
)
def test_watch_events_update_the_view(
    event: str, expected_pods: list[str], expected_queue: list[tuple[str, str]]
) -> None:
    state = ClusterState()
    state.set_pod(pod_record(pod("a", "5")))
    state.set_pod(pod_record(pod("b", "5")))
    pods = feed(ScriptedKube([], [[{"type": event, "object": pod("b", "9")}]]), state)

    assert pods.watch("7") == "9"

    assert sorted(name for _, name in state.pods) == expected_pods
    assert [name for _, name in state.pods_in("shop")] == expected_pods
    assert [name for _, name in state.pods_owned_by("shop", "Pod", "b")] == [
        n for n in expected_pods if n == "b"
    ]
    assert queued(pods) == expected_queue


def test_a_finished_pod_leaves_the_view() -> None:
    state = ClusterState()
    state.set_pod(pod_record(pod("job", "5")))
    pods = feed(
        ScriptedKube([], [[{"type": "MODIFIED", "object": pod("job", "9", phase="Succeeded")}]]),
        state,
    )
    pods.watch("7")
    assert state.pod(("shop", "job")) is None


def test_an_echo_older_than_our_patch_is_ignored() -> None:
    state = ClusterState()
    state.set_pod(pod_record(pod("a", "5")))
    state.update_pod_annotations(
        ("shop", "a"), {"mamori.io/scan-status": "clean"}, resource_version="12"
    )
    pods = feed(ScriptedKube([], [[{"type": "MODIFIED", "object": pod("a", "8")}]]), state)

    pods.watch("7")

    assert state.pod(("shop", "a")).annotations == {"mamori.io/scan-status": "clean"}  # type: ignore[union-attr]
    assert queued(pods) == []


def running(name: str, version: str, digest: str) -> dict[str, Any]:
    body = pod(name, version)
    body["status"]["containerStatuses"] = [
        {"name": "app", "imageID": f"registry.example/app@{digest}"}
    ]
    return body


@pytest.mark.parametrize(
    ("echo", "looked_at_again"),
    [
        pytest.param(pod("a", "12"), False, id="our patch alone"),
        pytest.param(running("a", "12", "sha256:" + "c" * 64), True, id="a digest came before it"),
        pytest.param(
            {**pod("a", "12"), "metadata": {**pod("a", "12")["metadata"], "labels": {"v": "2"}}},
            True,
            id="a label changed before it",
        ),
    ],
)
def test_the_echo_of_our_own_patch_is_looked_at_only_when_it_brings_more(
    echo: dict[str, Any], looked_at_again: bool
) -> None:
    """Our patch's answer gave the view its version and annotations, nothing else: its echo is
    skipped unless something else moved before our write."""
    state = ClusterState()
    state.set_pod(pod_record(pod("a", "5")))
    state.update_pod_annotations(
        ("shop", "a"), {"mamori.io/scan-status": "pending"}, resource_version="12"
    )
    pods = feed(ScriptedKube([], [[{"type": "MODIFIED", "object": echo}]]), state)

    pods.watch("7")

    assert queued(pods) == ([("shop", "a")] if looked_at_again else [])
    known = state.pod(("shop", "a"))
    assert known is not None and known.images == pod_record(echo).images


def test_bookmarks_move_the_resume_version_and_gone_asks_for_a_list() -> None:
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "40"}}}
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    pods = feed(ScriptedKube([], [[bookmark], [bookmark, gone]]))

    assert pods.watch("7") == "40"
    assert pods.watch("40") == ""  # list again
    assert event_count(pods) == 0


def test_the_feed_lists_again_after_gone_and_resumes_from_the_list() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    kube = ScriptedKube([[pod("a", "5")]], [[gone], []], version="100")
    pods = feed(kube)
    pods.retry_base = 0.01
    thread = threading.Thread(target=pods._feed, daemon=True)
    thread.start()
    try:
        # list, watch → 410, list again, watch → ends, watch → link down (retried)
        wait_for(lambda: kube.lists == 2 and len(kube.watched_from) >= 3, timeout=10)
    finally:
        pods.stop()
        thread.join(10)
    assert kube.watched_from[:3] == ["100", "100", "100"]
    assert pods.lists == 2


def test_a_requested_relist_lists_again_and_replaces_the_view() -> None:
    kube = ScriptedKube([[pod("a", "5")]])  # every watch fails: the feed keeps retrying
    pods = feed(kube)
    pods.retry_base = 0.01
    thread = threading.Thread(target=pods._feed, daemon=True)
    thread.start()
    try:
        wait_for(lambda: kube.lists == 1 and kube.watched_from, timeout=10)
        kube.pages = [[pod("b", "7")]]  # "a" was deleted while nobody watched
        pods.request_relist()
        wait_for(lambda: kube.lists == 2 and pods.lists == 2, timeout=10)
    finally:
        pods.stop()
        thread.join(10)
    assert sorted(pods.state.pods) == [("shop", "b")]


# -- the work queue --------------------------------------------------------------------------


def test_a_key_waits_in_the_queue_once() -> None:
    queue: KeyQueue[str] = KeyQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert len(queue) == 2
    assert [queue.get(timeout=0), queue.get(timeout=0), queue.get(timeout=0)] == ["a", "b", None]


def test_a_key_added_while_worked_on_comes_back_after_and_never_twice_at_once() -> None:
    queue: KeyQueue[str] = KeyQueue()
    queue.add("a")
    taken = queue.get(timeout=0)
    queue.add("a")  # a new event while a worker holds it
    assert queue.get(timeout=0) is None  # not handed to a second worker meanwhile
    queue.done("a")
    assert (taken, queue.get(timeout=0)) == ("a", "a")
    queue.done("a")
    assert queue.idle()


def test_a_closed_queue_releases_its_workers() -> None:
    queue: KeyQueue[str] = KeyQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.get()), daemon=True)
    worker.start()
    queue.close()
    worker.join(10)
    assert got == [None]
