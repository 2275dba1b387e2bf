"""The cluster's ImageScans in memory, by digest: what ``image-vulnerabilities`` judges images by.

Kept current like the policies (:class:`~mamori_webhook.watch.ListWatch`: list, watch from the
list's resourceVersion, list again after 410 Gone, back off on failures), and only while some
policy has ``spec.vulnerabilities``: the policy source starts and stops it. A lookup is one dict
read and never waits on the API server. A malformed ImageScan is logged and left out (its image
is then unscanned), never trusted. The index is bounded: past ``max_entries`` digests, new ones
are left out with a warning, so a flood of ImageScans cannot exhaust the webhook's memory.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Mapping

from mamori.logs import log_context
from mamori.scans import InvalidImageScan, ScanResult, digest_of_name, scan_result_from_object
from mamori_webhook.watch import Item, ListFunction, ListWatch

LOG = logging.getLogger("mamori_webhook.scans")
WATCH_NAME = "imagescans"
MAX_ENTRIES = 50_000


class ScanIndex:
    """Digest → :class:`ScanResult`, a :class:`~mamori.scans.ScanLookup` for the engine."""

    def __init__(
        self,
        list_function: ListFunction,
        *,
        max_entries: int = MAX_ENTRIES,
        watch_timeout: int = 300,
        request_timeout: float = 10.0,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._list = list_function
        self._max_entries = max_entries
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._lock = threading.Lock()
        self._results: dict[str, ScanResult] = {}
        self._watch: ListWatch | None = None
        self._full_warned = False

    # -- ScanLookup ---------------------------------------------------------------------------

    def scan(self, digest: str) -> ScanResult | None:
        return self._results.get(digest)

    def now(self) -> datetime.datetime:
        return self._clock()

    def unavailable(self) -> str | None:
        if self.synced:
            return None
        watch = self._watch
        if watch is None:
            return "ImageScans are not followed"
        if watch.last_error is not None:
            return f"listing ImageScans failed: {watch.last_error}"
        return "ImageScans are not listed yet"

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._watch is not None

    @property
    def synced(self) -> bool:
        """True once the running watch has listed every ImageScan."""
        watch = self._watch
        return watch is not None and watch.synced.is_set()

    @property
    def settled(self) -> bool:
        """Listed, or failed to list at least once: the policy source waits for one or the
        other, so a webhook pod is not Ready on an unread index, yet an ImageScan list it is
        not allowed to read (RBAC, a missing CRD) cannot keep every pod unready."""
        watch = self._watch
        return watch is not None and (watch.synced.is_set() or watch.last_error is not None)

    @property
    def watch(self) -> ListWatch | None:
        """The current watch loop (None while stopped), for health and tests."""
        return self._watch

    def __len__(self) -> int:
        return len(self._results)

    def start(self) -> None:
        """Start following ImageScans (a no-op when already running)."""
        with self._lock:
            if self._watch is not None:
                return
            self._watch = ListWatch(
                name=WATCH_NAME,
                list_function=self._list,
                on_replace=self.replace,
                on_event=self.event,
                watch_timeout=self._watch_timeout,
                request_timeout=self._request_timeout,
            )
            watch = self._watch
        LOG.info("following ImageScans: a policy has spec.vulnerabilities")
        watch.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following and forget every result (they would only grow stale)."""
        with self._lock:
            watch, self._watch = self._watch, None
            self._results = {}
        if watch is not None:
            watch.stop(timeout)

    # -- feeding ------------------------------------------------------------------------------

    def replace(self, items: list[Item]) -> None:
        """A complete list: the index becomes exactly its readable ImageScans."""
        fresh: dict[str, ScanResult] = {}
        for item in items:
            result = _read(item)
            if result is None:
                continue
            if len(fresh) >= self._max_entries:
                self._warn_full()
                break
            fresh[result.digest] = result
        with self._lock:
            self._results = fresh

    def event(self, kind: str, item: Item) -> None:
        """One watch event: an ImageScan added, changed or deleted."""
        name = _name(item)
        digest = digest_of_name(name) if name else None
        with self._lock:
            if kind == "DELETED":
                if digest is not None:
                    self._results.pop(digest, None)
                return
            result = _read(item)
            if result is None:
                if digest is not None:  # an edit that broke it: its old result is not kept
                    self._results.pop(digest, None)
                return
            if result.digest not in self._results and len(self._results) >= self._max_entries:
                self._warn_full()
                return
            self._results[result.digest] = result

    def _warn_full(self) -> None:
        if not self._full_warned:
            self._full_warned = True
            LOG.warning(
                "more than %d ImageScans: the others are left out (their images are unscanned)",
                self._max_entries,
            )


def _read(item: Item) -> ScanResult | None:
    try:
        return scan_result_from_object(item)
    except InvalidImageScan as error:
        name = _name(item) or "(unnamed)"
        LOG.warning(
            "ImageScan %s is malformed and is skipped: %s",
            name,
            error,
            extra=log_context(name=name),
        )
        return None


def _name(item: Item) -> str | None:
    metadata = item.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        return str(metadata["name"])
    return None
