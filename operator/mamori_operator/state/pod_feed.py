"""Pods reach the operator through its own list and watch, not through kopf.

kopf starts one worker task per object, each holding its body, its loggers and its queued
handler call until the object has been quiet for a while; after a restart that is every pod of
the cluster at once (the resident set of a 5,000-pod cold start was mostly that burst). Pods
are the one kind that numbers in the tens of thousands, so they take the informer's path
instead: list page by page into :class:`~mamori_operator.state.cluster.ClusterState` (each
page is dropped once its pods are records), then watch from the list's resourceVersion, one
event at a time. The keys of pods to look at go into a :class:`KeyQueue` (a pod waits there at
most once), and ``workers`` threads refresh their scan status: the work in flight is bounded,
and no two threads ever patch one pod.

The watch resumes from the last version it saw when the stream ends or breaks; when the API
server no longer has that version (410 Gone), and on each resync after the first
(:meth:`PodFeed.request_relist`), the feed lists again and the list replaces the pod view in
place: pods missing from it are gone, whether or not a DELETED event ever came.
Nothing is refreshed before the start-up prime has listed policies, namespaces and scan reports
(``synced``), so no pod is judged on half a picture.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import urllib3

from mamori_operator.api.kube import Kube, KubeError
from mamori_operator.metrics import Metrics
from mamori_operator.scanning.scanner import PodScanner
from mamori_operator.state.cluster import ClusterState
from mamori_operator.state.pods import is_finished, pod_record
from mamori_operator.state.workqueue import KeyQueue

logger = logging.getLogger(__name__)
PODS = "/api/v1/pods"
GONE = 410


class PodFeed:
    def __init__(
        self,
        *,
        kube: Kube,
        state: ClusterState,
        scanner: PodScanner,
        metrics: Metrics,
        synced: threading.Event,
        workers: int,
        watch_timeout: float,
        page_size: int = 500,
        retry_base: float = 0.5,
        retry_limit: float = 30.0,
    ) -> None:
        self.kube = kube
        self.state = state
        self.scanner = scanner
        self.metrics = metrics
        self.synced = synced
        self.workers = workers
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.retry_base = retry_base
        self.retry_limit = retry_limit
        self.queue: KeyQueue[tuple[str, str]] = KeyQueue()
        self.lists = 0
        """Completed lists (the first one, then one per 410 Gone)."""
        self._stop = threading.Event()
        self._relist_wanted = threading.Event()
        self._threads: list[threading.Thread] = []
        self._response: urllib3.BaseHTTPResponse | None = None
        self._response_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._feed, name="mamori-pods", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"mamori-pod-worker-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.close()
        self._interrupt_watch()
        for thread in self._threads:
            thread.join(timeout)

    def look_again(self, keys: Iterable[tuple[str, str]]) -> None:
        """Queue pods for the workers: a policy or namespace change fans out to many pods, which
        the workers take at their own pace, each once, never two threads on one pod."""
        self.queue.add_all(keys)

    def request_relist(self) -> None:
        """List pods again (the resync's backstop): the watch is cut short, the list replaces
        the pod view in place, and the watch resumes from the list."""
        self._relist_wanted.set()
        self._interrupt_watch()

    def _interrupt_watch(self) -> None:
        with self._response_lock:
            if self._response is not None:
                _shut(self._response)  # unblocks the watch's read at once

    # -- list and watch ------------------------------------------------------------------------

    def _feed(self) -> None:
        version = ""
        delay = self.retry_base
        while not self._stop.is_set():
            try:
                if not version or self._relist_wanted.is_set():
                    self._relist_wanted.clear()
                    version = self.relist()
                version = self.watch(version)
                delay = self.retry_base
            except KubeError as error:
                if self._stop.is_set():
                    return
                if self._relist_wanted.is_set():
                    continue  # we cut the watch ourselves, to list again
                if error.status == GONE:
                    logger.info("pod watch expired (410 Gone): listing pods again")
                    version = ""
                    continue
                logger.warning("pod watch failed, resuming in %.1fs: %s", delay, error)
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_limit)
            except Exception:  # keep the feed alive; the next attempt starts from the list
                logger.exception("pod feed failed; listing pods again in %.1fs", delay)
                version = ""
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_limit)

    def relist(self) -> str:
        """List every pod, page by page, into the view; return the list's resourceVersion.

        Each listed pod replaces the one in the view unless the view's is newer (our own patch
        landed after the list was read); pods not listed are dropped. Only pods that differ
        are queued for a look.
        """
        listed: set[tuple[str, str]] = set()
        version = ""
        for items, page_version in self.kube.list_pages(
            PODS, resource="pods", limit=self.page_size
        ):
            version = page_version  # every page of one list carries the list's version
            for body in items:
                self.metrics.pod_events.inc()  # a listed pod is an event of type None
                if is_finished(body):
                    continue
                record = pod_record(body)
                listed.add(record.key)
                if self.state.offer_listed_pod(record):
                    self.queue.add(record.key)
            if self._stop.is_set():
                return ""
        gone = self.state.drop_pods_except(listed)
        if gone and self.lists:
            logger.info("pod re-list: %d pods were gone without a DELETED event", len(gone))
        self.lists += 1
        return version

    def watch(self, version: str) -> str:
        """Follow one watch request from ``version``; return the last version seen ("" when
        the API server no longer has it, which means: list again)."""
        for event in self.kube.watch(
            PODS, resource_version=version, timeout=self.watch_timeout, opened=self._opened
        ):
            if self._stop.is_set() or self._relist_wanted.is_set():
                break
            kind = str(event.get("type") or "")
            body = event.get("object") or {}
            if kind == "ERROR":
                code = int(body.get("code") or 0)
                if code == GONE:
                    return ""
                raise KubeError(code, str(body.get("reason", "")), str(body.get("message", "")))
            seen = str((body.get("metadata") or {}).get("resourceVersion") or "")
            if kind != "BOOKMARK":
                self.handle(kind, body)
            version = seen or version
        with self._response_lock:
            self._response = None
        return version

    def _opened(self, response: urllib3.BaseHTTPResponse) -> None:
        with self._response_lock:
            self._response = response
        if self._stop.is_set() or self._relist_wanted.is_set():
            _shut(response)  # asked for while the watch was being opened

    def handle(self, kind: str, body: Mapping[str, Any]) -> None:
        """One watch event: update the view, queue the pod for a look."""
        self.metrics.pod_events.inc()
        metadata = body.get("metadata") or {}
        namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        if kind == "DELETED" or is_finished(body):
            self.state.remove_pod(namespace, name)
            return
        record = pod_record(body)
        if self.state.holds_as_new_as(record):
            return  # an event from before our own latest write, or its bare echo
        self.state.set_pod(record)
        self.queue.add(record.key)

    # -- workers -------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self.synced.wait(0.1):  # policies, namespaces and reports listed first
            if self._stop.is_set():
                return
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self.scanner.refresh_pods([key])  # logs, never raises
            finally:
                self.queue.done(key)


def _shut(response: urllib3.BaseHTTPResponse) -> None:
    with contextlib.suppress(ValueError, RuntimeError, OSError):
        response.shutdown()  # raises when already closed or released: nothing to unblock
