"""The operator's one background thread: status refresh, PolicyReports, due rescans, resync.

Watch events do the urgent work in kopf's handlers; this loop does what is due by time: write
policy statuses that changed (every ``status_interval``) and then the PolicyReports (when
switched on) and the Event counts a rate limit held back, look again at digests whose cached
scan result expired, and resync: re-list the cluster from the API server, replacing the
operator's view whole (pods through their own feed, see ``state/pod_feed.py``), then
re-converge every namespace's NetworkPolicies and the pods whose inputs changed. A resync runs
once per ``resync_interval`` and as soon as ``relist_wanted`` is set (kopf re-listed a
resource, or the API server was unreachable): a missed DELETED event costs one pass, never
correctness. A failed resync is retried on the next pass. After a primed start-up, the second
resync comes ``confirm_after`` seconds after the first: kopf lists each kind a moment after the
prime did, and only a re-list after kopf's can drop an object deleted in between. The status
and PolicyReport refresh, which walks every pod, takes at most a tenth of a core
(:func:`pause_after`): on a large cluster the status trails a little rather than the operator
spending half a core re-counting pods. The rest of a pass (a wanted resync, due rescans, held
back Events, the heap trim) does not wait for it: it runs every ``status_interval``, so a
re-list after the API server was away starts within seconds at any cluster size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mamori_operator.api.events import EventRecorder
from mamori_operator.api.kube import KubeError
from mamori_operator.network.reconciler import NetworkPolicyReconciler
from mamori_operator.reports.writer import PolicyReporter
from mamori_operator.scanning.cache import ScanCache
from mamori_operator.scanning.scanner import PodScanner
from mamori_operator.state.cluster import ClusterState, RelistChanges
from mamori_operator.state.relist import ClusterLister
from mamori_operator.status.policy_status import StatusWriter

logger = logging.getLogger(__name__)
BUSY_SHARE = 0.1
"""At most this share of a core goes to the status refresh (see :func:`pause_after`)."""
LONGEST_PAUSE = 30.0
"""Seconds: the longest a status refresh waits for the next, far inside the liveness probe's
120 s (which counts passes, and those never wait for it)."""


def pause_after(took: float, *, interval: float, share: float, longest: float) -> float:
    """Seconds from one status refresh to the next: ``interval``, stretched when a refresh
    took long (``took``: the CPU seconds it spent, not its waits on the API server).

    Every refresh walks every pod (the audit's stamps, the status counts): at 50,000 pods one
    takes about a second, and every 2 s that would be half a core spent re-reading what
    barely moved. Waiting ``took * (1 - share) / share`` keeps refreshes to ``share`` of the
    time; statuses then trail by up to ``longest`` seconds on the largest clusters.
    """
    return min(max(interval, took * (1.0 - share) / share), max(interval, longest))


class Housekeeper:
    def __init__(
        self,
        *,
        state: ClusterState,
        reconciler: NetworkPolicyReconciler,
        scanner: PodScanner,
        cache: ScanCache,
        status: StatusWriter,
        synced: threading.Event,
        status_interval: float,
        resync_interval: float,
        clock: Callable[[], float] = time.monotonic,
        lister: ClusterLister | None = None,
        relist_wanted: threading.Event | None = None,
        reports: PolicyReporter | None = None,
        events: EventRecorder | None = None,
        relist_pods: Callable[[], object] | None = None,
        trim_heap: Callable[[], object] | None = None,
        confirm_after: float | None = None,
        busy_share: float = BUSY_SHARE,
    ) -> None:
        self.state = state
        self.reconciler = reconciler
        self.scanner = scanner
        self.cache = cache
        self.status = status
        self.synced = synced
        self.status_interval = status_interval
        self.confirm_after = confirm_after
        self.busy_share = busy_share
        self.resync_interval = resync_interval
        self.clock = clock
        self.lister = lister
        self.relist_wanted = relist_wanted or threading.Event()
        self.reports = reports
        self.events = events
        self.relist_pods = relist_pods
        self.trim_heap = trim_heap
        self.resyncs = 0
        self._status_resumes: float | None = None  # clock time; None: every pass
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mamori-housekeeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        # Nothing is decided before kopf has listed what is there (see state.Handled).
        while not self.synced.wait(0.1):
            if self._stop.is_set():
                return
        next_resync = self.clock()  # first pass converges everything (resume after a restart)
        while not self._stop.is_set():
            if self.relist_wanted.is_set() or self.clock() >= next_resync:
                self.relist_wanted.clear()
                if self._guarded("resync", self.resync):
                    interval = self.resync_interval
                    if self.resyncs == 1 and self.confirm_after is not None:
                        interval = min(interval, self.confirm_after)
                    next_resync = self.clock() + interval
                else:
                    self.relist_wanted.set()  # the API is away: try again next pass
            self._guarded("rescan", self.rescan_due)
            if self._status_resumes is None or self.clock() >= self._status_resumes:
                self._refresh_status()
            if self.events is not None:  # repeats held back by an object's rate limit
                self._guarded("event flush", self.events.flush)
            if self.trim_heap is not None:  # what this pass and the workers freed, to the OS
                self._guarded("heap trim", self.trim_heap)
            self.passes += 1
            self._stop.wait(self.status_interval)

    def _refresh_status(self) -> None:
        """Write policy statuses (and PolicyReports); when that took long, skip it on the
        passes of the next ``pause_after`` seconds so that it keeps to its share of a core."""
        began = time.thread_time()  # CPU, not waiting on the API server
        self._guarded("status refresh", self.status.refresh)
        if self.reports is not None:
            self._guarded("policy reports", self.reports.refresh)
        pause = pause_after(
            time.thread_time() - began,
            interval=self.status_interval,
            share=self.busy_share,
            longest=LONGEST_PAUSE,
        )
        self._status_resumes = self.clock() + pause if pause > self.status_interval else None

    def resync(self) -> None:
        """Re-list the cluster (when a lister is wired; not on the first pass after a prime,
        which has just listed it), then converge everything against it.

        When the API server cannot answer the re-list, nothing is converged against a view
        that may be stale; ``relist_wanted`` stays set and the next pass tries again.
        """
        primed_just_now = self.resyncs == 0 and self.confirm_after is not None
        if self.lister is not None and not primed_just_now:  # the prime has just listed
            try:
                changes = self.lister.relist()
            except KubeError as error:
                logger.warning("re-list failed, retrying next pass: %s", error)
                self.relist_wanted.set()
                return
            self._follow(changes)
            confirming = self.resyncs == 1 and self.confirm_after is not None
            if self.relist_pods is not None and self.resyncs and not confirming:
                # pods are listed by their own feed (page by page, in place); the first pass
                # follows its first list and the confirming one (after a prime) is about what
                # kopf lists, so only the periodic resyncs ask for another
                self.relist_pods()
        self.reconciler.reconcile_all()
        self.resyncs += 1

    def _follow(self, changes: RelistChanges) -> None:
        """Drop what belonged to vanished namespaces; re-judge pods whose scan inputs changed."""
        for namespace in changes.namespaces:
            if self.state.namespace(namespace) is None:
                self.reconciler.forget_namespace(namespace)  # its errors and pending retries
        if changes.policies or changes.namespaces:
            self.scanner.refresh_pods(pod.key for pod in self.state.all_pods())
            return
        keys = set(changes.pods)
        for digest in changes.image_scans:
            keys.update(self.state.pods_using(digest))
        self.scanner.refresh_pods(sorted(keys))

    def rescan_due(self) -> None:
        in_use = self.state.digests_in_use()
        self.cache.prune(in_use)
        due = self.cache.take_expired()
        if due:
            self.scanner.refresh_digests(sorted(due))

    def _guarded(self, what: str, action: Callable[[], object]) -> bool:
        try:
            action()
        except Exception:  # keep the loop alive; the next pass retries
            logger.exception("%s failed", what)
            return False
        return True
