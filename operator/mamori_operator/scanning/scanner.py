"""Image-scan status on pods: ask providers (through the cache), annotate pods, record ImageScans.

A pod event costs at most one pod patch (only when the summary changed), plus provider calls on
cache misses and an ImageScan write when a digest's result is new. Nothing here walks every pod
on a timer: when a digest's cached result expires or a new report arrives, only the pods that
run that digest are looked at again, and again patched only on change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mamori.logs import log_context
from mamori.policy import API_GROUP, VERSION
from mamori.policy.image_scan import ImageScanSpec
from mamori_operator.api.events import EventRecorder, ObjectRef
from mamori_operator.api.kube import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Kube,
    KubeError,
    cluster_object_path,
    pod_path,
)
from mamori_operator.metrics import IMAGE_SCAN, POD_SCAN_STATUS, SCAN_LOOKUP, Metrics
from mamori_operator.scanning.cache import ScanCache
from mamori_operator.scanning.model import (
    ANNOTATIONS,
    STATUS_ANNOTATION,
    ImageRef,
    Outcome,
    ProviderAnswer,
    ScanReport,
    ScanStatus,
    image_scan_name,
    image_status,
    summarize_pod,
)
from mamori_operator.scanning.providers.base import ScanProvider, ScanTarget
from mamori_operator.state.cluster import ClusterState, ImageScanRecord, PodRecord

logger = logging.getLogger(__name__)
IMAGESCAN_PLURAL = "imagescans"
IMAGESCAN_VERSION = VERSION
ANSWER_PRIORITY = (Outcome.PENDING, Outcome.ERROR, Outcome.UNSCANNED)
POD_LOCK_STRIPES = 64


@dataclass(frozen=True, slots=True)
class ProviderProblem:
    provider: str
    reason: str
    message: str


class ProviderHealth:
    """The last failure of each provider, cleared by its next good answer."""

    def __init__(self) -> None:
        self._problems: dict[str, ProviderProblem] = {}
        self._lock = threading.Lock()

    def record(self, answer: ProviderAnswer) -> None:
        with self._lock:
            if answer.healthy:
                self._problems.pop(answer.provider, None)
            else:
                self._problems[answer.provider] = ProviderProblem(
                    answer.provider, answer.reason or "Error", answer.message
                )

    def problems(self, providers: Iterable[str]) -> list[ProviderProblem]:
        with self._lock:
            return [self._problems[p] for p in providers if p in self._problems]


class PodScanner:
    def __init__(
        self,
        *,
        state: ClusterState,
        kube: Kube,
        events: EventRecorder,
        metrics: Metrics,
        providers: Mapping[str, ScanProvider],
        cached_providers: frozenset[str],
        cache: ScanCache,
        health: ProviderHealth,
    ) -> None:
        self.state = state
        self.kube = kube
        self.events = events
        self.metrics = metrics
        self.providers = providers
        self.cached_providers = cached_providers
        self.cache = cache
        self.health = health
        # one pod is refreshed by one thread at a time (the pod feed, a policy change and the
        # resync may all reach it): the second sees the first's patch and writes nothing
        self._pod_locks = tuple(threading.Lock() for _ in range(POD_LOCK_STRIPES))
        metrics.show_scan_statuses(self.scan_status_counts)

    # -- pods ----------------------------------------------------------------------------------

    def refresh_pod(self, key: tuple[str, str]) -> bool:
        """Bring one pod's annotations up to date; True when it was patched."""
        with self._pod_locks[hash(key) % POD_LOCK_STRIPES]:
            return self._refresh_pod(key)

    def _refresh_pod(self, key: tuple[str, str]) -> bool:
        pod = self.state.pod(key)
        if pod is None:
            return False
        settings = self.state.scan_settings(pod.namespace)
        if settings is None:
            if not any(name in pod.annotations for name in ANNOTATIONS):
                return False
            desired: dict[str, str | None] = dict.fromkeys(ANNOTATIONS)  # scanning turned off
            return self._patch(pod, desired, None)
        answers = [self._answer_for(pod, image, settings) for image in pod.images]
        summary = summarize_pod(answers, settings.severity_threshold)
        vulnerable = [
            a.report
            for a in answers
            if a.report is not None
            and image_status(a, settings.severity_threshold) is ScanStatus.VULNERABLE
        ]
        return self._patch(pod, summary.annotations(), vulnerable)

    def refresh_pods(self, keys: Iterable[tuple[str, str]]) -> int:
        return sum(1 for key in keys if self._safe_refresh(key))

    def refresh_digests(self, digests: Iterable[str]) -> int:
        """Refresh the pods that run ``digests`` now, in the caller's thread (the housekeeper's
        rescan). Event handlers queue pods for the pod feed's workers instead
        (:meth:`~mamori_operator.state.pod_feed.PodFeed.look_again`): at a cold start every
        report is an event, and the workers are refreshing the same pods already."""
        keys = sorted({key for digest in digests for key in self.state.pods_using(digest)})
        return self.refresh_pods(keys)

    def _safe_refresh(self, key: tuple[str, str]) -> bool:
        try:
            return self.refresh_pod(key)
        except Exception:  # one bad pod must not stop a batch
            namespace, name = key
            logger.exception(
                "could not refresh scan status of pod %s/%s",
                namespace,
                name,
                extra=log_context(namespace=namespace, name=name),
            )
            return False

    def _patch(
        self,
        pod: PodRecord,
        desired: Mapping[str, str | None],
        vulnerable: list[ScanReport] | None,
    ) -> bool:
        current = {name: pod.annotations.get(name) for name in ANNOTATIONS}
        if dict(desired) == current:
            return False
        try:
            written = self.kube.merge_patch(
                pod_path(pod.namespace, pod.name),
                {"metadata": {"annotations": dict(desired)}},
                resource="pods",
            )
        except KubeError as error:
            if error.status != 404:
                self.metrics.count_reconcile(POD_SCAN_STATUS, failed=True)
                raise
            return False
        self.metrics.count_reconcile(POD_SCAN_STATUS, failed=False)
        version = str((written.get("metadata") or {}).get("resourceVersion", ""))
        self.state.update_pod_annotations(pod.key, desired, resource_version=version)
        was = current.get(STATUS_ANNOTATION)
        if vulnerable and was != ScanStatus.VULNERABLE.value:
            self.events.warning(
                ObjectRef("v1", "Pod", pod.name, uid=pod.uid, namespace=pod.namespace),
                reason="VulnerableImage",
                message="; ".join(_describe(report) for report in vulnerable),
            )
        return True

    def scan_status_counts(self) -> dict[str, int]:
        """Pods by their scan-status annotation, every status present (for the metrics)."""
        counts = dict.fromkeys((status.value for status in ScanStatus), 0)
        for pod in self.state.all_pods():
            status = pod.annotations.get(STATUS_ANNOTATION)
            if status in counts:
                counts[status] += 1
        return counts

    # -- images --------------------------------------------------------------------------------

    def _answer_for(
        self, pod: PodRecord, image: ImageRef, settings: ImageScanSpec
    ) -> ProviderAnswer:
        if not image.digest:
            return ProviderAnswer(
                "kubelet", Outcome.PENDING, message="digest not known until the container starts"
            )
        target = ScanTarget(
            digest=image.digest,
            image=image.image,
            namespace=pod.namespace,
            owner_kind=pod.owner_kind,
            owner_name=pod.owner_name,
            container=image.container,
        )
        return self.answer(target, settings)

    def answer(self, target: ScanTarget, settings: ImageScanSpec) -> ProviderAnswer:
        """Ask the policy's providers in order; the first finished result wins."""
        others: list[ProviderAnswer] = []
        for name in settings.providers:
            provider = self.providers.get(name)
            if provider is None:
                continue
            answer = self._lookup(provider, target, settings)
            if answer is None:
                continue
            if answer.outcome is Outcome.COMPLETE:
                return answer
            others.append(answer)
        for outcome in ANSWER_PRIORITY:
            for answer in others:
                if answer.outcome is outcome:
                    return answer
        return ProviderAnswer(
            "none", Outcome.UNSCANNED, message="no configured provider covers this image"
        )

    def _lookup(
        self, provider: ScanProvider, target: ScanTarget, settings: ImageScanSpec
    ) -> ProviderAnswer | None:
        def fetch() -> ProviderAnswer | None:
            answer = provider.lookup(target)
            if answer is not None:
                self.health.record(answer)
                self.metrics.provider_requests.labels(
                    provider=provider.name, outcome=answer.outcome.value
                ).inc()
                self.metrics.count_reconcile(SCAN_LOOKUP, failed=not answer.healthy)
            return answer

        if provider.name not in self.cached_providers:
            answer = fetch()
            fetched = True
        else:
            key = (provider.name, target.digest, provider.scope(target))
            answer, fetched = self.cache.get(
                key, fetch, ttl_complete=settings.cache_ttl, ttl_other=settings.rescan_interval
            )
        if (
            fetched
            and answer is not None
            and answer.report is not None
            and answer.outcome is Outcome.COMPLETE
            and provider.name != "imagescan"
        ):
            self.record_image_scan(answer.report)
        return answer

    # -- ImageScan objects ---------------------------------------------------------------------

    def record_image_scan(self, report: ScanReport) -> None:
        """Write (or update) the ImageScan for a digest, unless nothing changed.

        A pipeline's own ImageScan is never overwritten; between two providers, the newer scan
        wins, so two policies with different providers do not flip the object back and forth.
        """
        existing = self.state.image_scan(report.digest)
        spec = report.to_spec()
        if existing is not None:
            if not existing.managed or existing.spec == spec:
                return
            if (
                str(existing.spec.get("scanner")) != report.scanner
                and str(existing.spec.get("scannedAt", "")) > report.scanned_at
            ):
                return
        name = image_scan_name(report.digest)
        body = {
            "apiVersion": f"{API_GROUP}/{IMAGESCAN_VERSION}",
            "kind": "ImageScan",
            "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
            "spec": spec,
        }
        try:
            self.kube.apply(
                cluster_object_path(API_GROUP, IMAGESCAN_VERSION, IMAGESCAN_PLURAL, name),
                body,
                resource=IMAGESCAN_PLURAL,
                force=existing is not None,
            )
        except KubeError as error:
            self.metrics.count_reconcile(IMAGE_SCAN, failed=True)
            logger.warning(
                "could not write ImageScan %s: %s", name, error, extra=log_context(name=name)
            )
            return
        self.metrics.count_reconcile(IMAGE_SCAN, failed=False)
        self.state.set_image_scan(
            report.digest, ImageScanRecord(name=name, managed=True, spec=spec, report=report)
        )


def _describe(report: ScanReport) -> str:
    counts = ", ".join(
        f"{n} {s.name}" for s, n in sorted(report.counts.items(), reverse=True) if n > 0
    )
    return (
        f"image {report.repository}@{report.digest} has {counts or 'findings'} "
        f"(details: kubectl get imagescan {image_scan_name(report.digest)} -o yaml)"
    )
