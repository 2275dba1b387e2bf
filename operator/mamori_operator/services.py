"""The operator's services, wired once per run from :class:`OperatorConfig` and kept on ``memo``.

Handlers reach everything through ``memo.services``; nothing is global, so two operators (or a
restarted one) never share state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mamori.kubeconfig import load_client_configuration
from mamori_operator.api.events import EventRecorder
from mamori_operator.api.kube import Kube
from mamori_operator.config import OperatorConfig
from mamori_operator.housekeeper import Housekeeper
from mamori_operator.memory import heap_trimmer
from mamori_operator.metrics import Metrics
from mamori_operator.network.reconciler import NetworkPolicyReconciler
from mamori_operator.reports.build import ReportLimits
from mamori_operator.reports.writer import PolicyReporter
from mamori_operator.scanning.cache import ScanCache
from mamori_operator.scanning.providers import build_providers
from mamori_operator.scanning.providers.base import ProviderWiring
from mamori_operator.scanning.scanner import PodScanner, ProviderHealth
from mamori_operator.state.cluster import ClusterState, Handled
from mamori_operator.state.pod_feed import PodFeed
from mamori_operator.state.relist import CONFIRM_AFTER_PRIME, ClusterLister
from mamori_operator.status.audit import Auditor
from mamori_operator.status.policy_status import StatusWriter
from mamori_operator.status.registry_access import build_audit_evidence


@dataclass
class Services:
    config: OperatorConfig
    metrics: Metrics
    kube: Kube
    state: ClusterState
    handled: Handled
    events: EventRecorder
    reconciler: NetworkPolicyReconciler
    scanner: PodScanner
    cache: ScanCache
    health: ProviderHealth
    auditor: Auditor
    status: StatusWriter
    housekeeper: Housekeeper
    pods: PodFeed
    lister: ClusterLister
    reports: PolicyReporter | None = None

    @classmethod
    def build(
        cls,
        config: OperatorConfig,
        *,
        metrics: Metrics | None = None,
        fence: threading.Event | None = None,
    ) -> Services:
        metrics = metrics or Metrics()
        handled = Handled()
        kube = Kube(
            load_client_configuration(config.kubeconfig),
            metrics=metrics,
            pool=2 * config.workers + 4,  # kopf's handler threads, the pod workers, the watch
            on_unreachable=handled.relist_wanted.set,
            fence=fence,
        )
        state = ClusterState()
        events = EventRecorder(kube, instance=config.replica_identity())
        reconciler = NetworkPolicyReconciler(
            state=state,
            kube=kube,
            events=events,
            metrics=metrics,
            retry_base=config.retry_base_delay,
            retry_limit=config.retry_max_delay,
        )
        cache = ScanCache()
        health = ProviderHealth()
        wired = build_providers(ProviderWiring(config=config, state=state))
        scanner = PodScanner(
            state=state,
            kube=kube,
            events=events,
            metrics=metrics,
            providers=wired.providers,
            cached_providers=wired.cached,
            cache=cache,
            health=health,
        )
        auditor = Auditor(state, evidence=build_audit_evidence(config, state, kube=kube))
        status = StatusWriter(
            state=state,
            kube=kube,
            reconciler=reconciler,
            auditor=auditor,
            health=health,
            offenders=config.offenders,
        )
        reports = None
        if config.policy_reports:
            reports = PolicyReporter(
                state=state,
                kube=kube,
                auditor=auditor,
                limits=ReportLimits(
                    max_results=config.policy_report_max_results,
                    max_bytes=config.policy_report_max_bytes,
                ),
                relist_interval=config.resync_interval,
            )
        pods = PodFeed(
            kube=kube,
            state=state,
            scanner=scanner,
            metrics=metrics,
            synced=handled.synced,
            workers=config.workers,
            watch_timeout=config.watch_timeout,
        )
        lister = ClusterLister(kube=kube, state=state, top_findings=config.top_findings)
        housekeeper = Housekeeper(
            state=state,
            reconciler=reconciler,
            scanner=scanner,
            cache=cache,
            status=status,
            synced=handled.synced,
            status_interval=config.status_interval,
            resync_interval=config.resync_interval,
            lister=lister,
            relist_wanted=handled.relist_wanted,
            reports=reports,
            events=events,
            relist_pods=pods.request_relist,
            trim_heap=heap_trimmer(),
            confirm_after=CONFIRM_AFTER_PRIME,
        )
        return cls(
            config=config,
            metrics=metrics,
            kube=kube,
            state=state,
            handled=handled,
            events=events,
            reconciler=reconciler,
            scanner=scanner,
            cache=cache,
            health=health,
            auditor=auditor,
            status=status,
            housekeeper=housekeeper,
            pods=pods,
            lister=lister,
            reports=reports,
        )

    def prime(self) -> None:
        """Read the cluster into the empty view, then let the pod feed and the housekeeper
        act on it (they wait for ``synced``); raises KubeError when the API is away."""
        self.lister.prime()
        self.handled.synced.set()

    def start(self) -> None:
        self.reconciler.retries.start()
        self.pods.start()
        self.housekeeper.start()

    def close(self) -> None:
        self.pods.stop()
        self.housekeeper.stop()
        self.reconciler.retries.stop()
        self.kube.close()
