"""The operator's one background thread: status refresh, due rescans, periodic resync.

Watch events do the urgent work in kopf's handlers; this loop does what is due by time: write
policy statuses that changed (every ``status_interval``), look again at digests whose cached
scan result expired, and re-converge every namespace's NetworkPolicies once per
``resync_interval`` in case an event was ever missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mamori.operator.netpol_reconciler import NetworkPolicyReconciler
from mamori.operator.policy_status import StatusWriter
from mamori.operator.scan_cache import ScanCache
from mamori.operator.scanner import PodScanner
from mamori.operator.state import ClusterState

logger = logging.getLogger(__name__)


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
    ) -> None:
        self.state = state
        self.reconciler = reconciler
        self.scanner = scanner
        self.cache = cache
        self.status = status
        self.synced = synced
        self.status_interval = status_interval
        self.resync_interval = resync_interval
        self.clock = clock
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
            if self.clock() >= next_resync:
                self._guarded("NetworkPolicy resync", self.reconciler.reconcile_all)
                next_resync = self.clock() + self.resync_interval
            self._guarded("rescan", self.rescan_due)
            self._guarded("status refresh", self.status.refresh)
            self.passes += 1
            self._stop.wait(self.status_interval)

    def rescan_due(self) -> None:
        in_use = self.state.digests_in_use()
        self.cache.prune(in_use)
        due = self.cache.take_expired()
        if due:
            self.scanner.refresh_digests(sorted(due))

    def _guarded(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception:  # keep the loop alive; the next pass retries
            logger.exception("%s failed", what)
