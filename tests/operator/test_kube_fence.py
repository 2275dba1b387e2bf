"""A replica that lost the leader Lease writes nothing more (mamori_operator/api/kube.py's fence).

The Kube points at a loopback port where nothing listens, so a request that is sent fails as
"Unreachable"; a write refused by the fence fails as "NotLeader" before anything is sent.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import kubernetes.client
import pytest

from mamori_operator.api.kube import Kube, KubeError
from mamori_operator.metrics import Metrics


def closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def fence() -> threading.Event:
    return threading.Event()


@pytest.fixture
def kube(fence: threading.Event) -> Iterator[Kube]:
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{closed_loopback_port()}"
    configuration.retries = False
    client = Kube(configuration, metrics=Metrics(), pool=1, fence=fence)
    yield client
    client.close()


def reason(kube: Kube, method: str) -> str:
    with pytest.raises(KubeError) as caught:
        kube.request(method, "/api/v1/namespaces/x/configmaps", resource="configmaps", timeout=2)
    return caught.value.reason


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_are_sent_while_leading_and_refused_once_the_lease_is_lost(
    kube: Kube, fence: threading.Event, method: str
) -> None:
    assert reason(kube, method) == "Unreachable"  # sent: nothing refused it on our side
    fence.set()
    assert reason(kube, method) == "NotLeader"


def test_reads_go_on_after_the_lease_is_lost(kube: Kube, fence: threading.Event) -> None:
    fence.set()
    assert reason(kube, "GET") == "Unreachable"
