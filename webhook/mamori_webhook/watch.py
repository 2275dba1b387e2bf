"""List, then watch, one Kubernetes collection into a local copy; re-list when the watch breaks.

The webhook answers from memory and must never wait on the API server, so a background thread
keeps each collection it reads (ClusterSecurityPolicies, Namespaces) current. The loop is the
one client-go's reflector runs: list (paged) to get every item and a resourceVersion, watch from
that version, carry on from the last version seen when a watch ends normally, list again when
the server says the version is too old (410 Gone) or anything else fails, with capped backoff.
A 410 re-lists at once; a second 410 in a row with no event between them (a fresh list that is
already too old) backs off like any failure, so the loop can never spin against the server.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

LOG = logging.getLogger("mamori_webhook.watch")
PAGE_SIZE = 500


class Response(Protocol):
    """What the kubernetes client returns with ``_preload_content=False`` (a urllib3 response)."""

    data: bytes

    def stream(self, amt: int | None = ...) -> Iterator[bytes]: ...

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


ListFunction = Callable[..., Response]
Item = Mapping[str, Any]


class Expired(Exception):
    """The watch's resourceVersion is too old: list again."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Doubling delays between failed attempts, capped."""

    initial: float = 0.5
    maximum: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * 2, self.maximum)


class ListWatch:
    """Keep ``on_replace``/``on_event`` fed with one collection until :meth:`stop`.

    ``list_function`` is a generated client method bound to its collection (for example
    ``functools.partial(custom_api.list_cluster_custom_object, group, version, plural)``).
    Callbacks run on this watcher's thread and must not raise; if one does, the loop logs it
    and lists again, which resynchronises the copy.
    """

    def __init__(
        self,
        *,
        name: str,
        list_function: ListFunction,
        on_replace: Callable[[list[Item]], None],
        on_event: Callable[[str, Item], None],
        watch_timeout: int = 300,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self.name = name
        self._list = list_function
        self._on_replace = on_replace
        self._on_event = on_event
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._backoff = backoff or Backoff()
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait  # injected by tests to record the delays
        self._progressed = False  # the current watch delivered an event or ended normally
        self._response: Response | None = None
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()
        self.last_error: str | None = None  # why the last list or watch failed; None once listed
        self.lists = 0  # complete lists done: 1 + every re-list after an expiry or failure
        self.watches = 0  # watch requests made: a watch that times out is resumed by a new one

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            _interrupt(response)
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        delays = self._backoff.delays()
        expired_bare = False  # the last watch expired without delivering anything
        while not self._stopping.is_set():
            try:
                version = self._list_all()
                if not expired_bare:  # a good list ends a failure streak, not an expiry streak
                    delays = self._backoff.delays()
                while not self._stopping.is_set():
                    self._progressed = False
                    version = self._watch(version)
                    delays = self._backoff.delays()
                    expired_bare = False
            except Expired:
                if self._progressed or not expired_bare:
                    LOG.info("watch of %s expired; listing again", self.name)
                    expired_bare = not self._progressed
                    continue
                delay = next(delays)
                LOG.warning(
                    "watch of %s expired right after a list; listing again in %.1fs",
                    self.name,
                    delay,
                )
                self._wait(delay)
            except Exception as error:  # any failure: log, wait, list again
                if self._stopping.is_set():
                    break
                delay = next(delays)
                self.last_error = _describe(error)
                LOG.warning(
                    "listing or watching %s failed (%s); retrying in %.1fs",
                    self.name,
                    self.last_error,
                    delay,
                )
                self._wait(delay)

    def _list_all(self) -> str:
        items: list[Item] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE_SIZE}
            if token:
                kwargs["_continue"] = token
            response = self._list(
                _preload_content=False, _request_timeout=self._request_timeout, **kwargs
            )
            try:
                page = json.loads(response.data)
            finally:
                response.release_conn()
            items.extend(item for item in page.get("items") or () if isinstance(item, Mapping))
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                version = str(metadata.get("resourceVersion", ""))
                break
        self._on_replace(items)
        self.lists += 1
        self.last_error = None
        self.synced.set()
        return version

    def _watch(self, version: str) -> str:
        """Follow events from ``version``; return the last version seen when the watch ends."""
        response = self._list(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
            _preload_content=False,
            _request_timeout=(self._request_timeout, self._watch_timeout + 30),
        )
        self._response = response
        self.watches += 1
        try:
            for event in _events(response):
                if self._stopping.is_set():
                    break
                version = self._handle(event, version)
        finally:
            self._response = None
            response.close()
            response.release_conn()
        return version

    def _handle(self, event: Mapping[str, Any], version: str) -> str:
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, Mapping):
            return version
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Expired()
            raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
        self._progressed = True
        metadata = obj.get("metadata") or {}
        new_version = metadata.get("resourceVersion") or version
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._on_event(str(kind), obj)
        return str(new_version)


def _events(response: Response) -> Iterator[Mapping[str, Any]]:
    """Split the watch stream into JSON events, one per line, however the chunks fall."""
    pending = b""
    for chunk in response.stream(None):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                event = json.loads(line)
                if isinstance(event, Mapping):
                    yield event
    if pending.strip():
        event = json.loads(pending)
        if isinstance(event, Mapping):
            yield event


def _interrupt(response: Response) -> None:
    """Unblock a thread reading ``response`` (urllib3 2.3+ can shut the socket down)."""
    shutdown = getattr(response, "shutdown", None)
    try:
        if callable(shutdown):
            shutdown()
        else:
            response.close()
    except Exception:  # best effort: the thread is a daemon and the watch times out anyway
        LOG.debug("could not interrupt watch", exc_info=True)


def _describe(error: BaseException) -> str:
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return f"{type(error).__name__}: {error}"
