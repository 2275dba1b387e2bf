"""An ImageScan's pods are refreshed by the pod feed's workers, once each, against the real API.

The ImageScan event only queues the pods that run its digest (handlers/scans.py); the workers
take each once (state/workqueue.py), patch its scan status once, and kopf's handler thread
refreshes nothing itself.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

import pytest

from mamori_operator.services import Services
from tests.integration.operator_support import Cluster, fake_digest, unique, wait_until

pytestmark = pytest.mark.integration
REFRESHERS = ("mamori-pod-worker-", "mamori-housekeeper")  # the queue's workers, the resync


@pytest.mark.parametrize("scanned_namespace", [("imagescan",)], indirect=True)
def test_an_image_scan_event_refreshes_its_pods_through_the_queue_once_each(
    cluster: Cluster,
    operator: Services,
    scanned_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = scanned_namespace
    digest = fake_digest(ns + "queue")
    pods = [unique("web") for _ in range(3)]
    for pod in pods:
        cluster.create_pod(ns, pod, {"app": "registry.example/web:1.0"}, owner=("web-6d4", "rs"))
        cluster.kubelet_reports(ns, pod, {"app": f"registry.example/web@{digest}"})
    for pod in pods:
        cluster.wait_for_scan_status(ns, pod, "unscanned")

    lock = threading.Lock()
    queued: list[tuple[str, str]] = []
    refreshed: list[tuple[tuple[str, str], str, bool]] = []  # key, thread, patched
    look_again, refresh_pod = operator.pods.look_again, operator.scanner._refresh_pod

    def queuing(keys: Iterable[tuple[str, str]]) -> None:
        keys = list(keys)
        with lock:
            queued.extend(key for key in keys if key[0] == ns)
        look_again(keys)

    def refreshing(key: tuple[str, str]) -> bool:
        patched = refresh_pod(key)
        if key[0] == ns:
            with lock:
                refreshed.append((key, threading.current_thread().name, patched))
        return patched

    monkeypatch.setattr(operator.pods, "look_again", queuing)
    monkeypatch.setattr(operator.scanner, "_refresh_pod", refreshing)

    cluster.write_image_scan(
        digest,
        {"repository": "registry.example/web", "scanner": "ci", "summary": {"high": 2}},
    )
    for pod in pods:
        cluster.wait_for_scan_status(ns, pod, "vulnerable")
    wait_until(operator.pods.queue.idle, message="the pod queue drained (echoes included)")

    keys = [(ns, pod) for pod in pods]
    with lock:
        assert Counter(queued) == Counter(keys)  # the event queued each of its pods once
        assert Counter(key for key, _, patched in refreshed if patched) == Counter(keys)
        outside = {thread for _, thread, _ in refreshed if not thread.startswith(REFRESHERS)}
    assert outside == set()  # kopf's handler thread refreshed nothing itself
