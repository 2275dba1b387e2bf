"""Run the operator: wait for the leader Lease, then run kopf until stopped.

Used by ``mamori operator`` and by tests (which run it in a thread, with a stop event). The
Lease is taken *before* kopf starts watching, so a standby replica does nothing at all; if the
leader cannot renew, it stops and exits non-zero, and its pod restarts as a standby.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any, cast

import kopf

import mamori_operator.handlers  # noqa: F401 - registers the handlers with kopf
from mamori.kubeconfig import load_client_configuration
from mamori_operator.api.kube import Kube
from mamori_operator.api.leadership import LeaseElector
from mamori_operator.config import OperatorConfig
from mamori_operator.memory import freeze_startup_objects, relax_young_collections
from mamori_operator.metrics import Metrics

if TYPE_CHECKING:  # kopf types the identity with a NewType it does not export
    from kopf._core.engines.peering import Identity

logger = logging.getLogger(__name__)
EXIT_OK = 0
EXIT_LOST_LEADERSHIP = 1


def run_operator(
    config: OperatorConfig,
    *,
    memo: kopf.Memo | None = None,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT in the main thread); return an exit status."""
    stop = stop or threading.Event()
    memo = memo if memo is not None else kopf.Memo()
    memo.config = config
    metrics: Metrics = memo.setdefault("metrics", Metrics())
    _stop_on_signals(stop)
    elector: LeaseElector | None = None
    lost = threading.Event()
    memo.fence = lost  # every Kube of this replica refuses writes once the Lease is lost
    renewing = threading.Event()
    if config.leader_election:
        elector = LeaseElector(
            Kube(load_client_configuration(config.kubeconfig), metrics=metrics, pool=2),
            namespace=config.namespace,
            name=config.lease_name,
            identity=config.replica_identity(),
            lease_seconds=config.lease_seconds,
        )
        logger.info("waiting for the leader Lease %s/%s", config.namespace, config.lease_name)
        if not elector.wait_for_leadership(stop):
            return EXIT_OK
        metrics.leader.set(1)

        def on_lost() -> None:
            lost.set()
            stop.set()

        elector.keep_renewing(renewing, on_lost)
    else:
        metrics.leader.set(1)

    async def operate() -> None:
        try:
            await kopf.operator(
                clusterwide=True,
                standalone=True,
                # kopf would otherwise name the replica after getpass.getuser(), which raises
                # for a numeric USER with no passwd entry (our image's 65532 on a real node).
                identity=cast("Identity", config.replica_identity()),
                memo=memo,
                stop_flag=stop,
                ready_flag=ready,
            )
        finally:
            # kopf waits for a threading.Event in an executor thread; when kopf stops for a
            # signal instead, that thread must be released or asyncio.run() never returns.
            stop.set()

    if threading.current_thread() is threading.main_thread():
        # the process is this operator: what it imported lives until exit (see memory.py);
        # tests that run operators in threads keep their own collector as it is
        freeze_startup_objects()
        relax_young_collections()
    try:
        asyncio.run(operate())
    finally:
        renewing.set()
        metrics.leader.set(0)
        if elector is not None and not lost.is_set():
            elector.release()
    return EXIT_LOST_LEADERSHIP if lost.is_set() else EXIT_OK


def _stop_on_signals(stop: threading.Event) -> None:
    """While waiting for the Lease, SIGTERM/SIGINT must end the wait (kopf takes over later)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, _frame: Any) -> None:
        logger.info("signal %s received; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
