"""Client CPU per API call: the operator's ``Kube`` against the generated client's request path.

Issue 16: every call the operator makes used to go through ``ApiClient.call_api``, which walks
each body with ``sanitize_for_serialization``, rebuilds the parameters, then goes through
``RESTClientObject.request`` to urllib3. ``Kube`` now sends straight to the same urllib3 pool.
This measures what that saves, per call, on the calls a cold start makes for each pod: a merge
patch of its scan annotations, a GET, an Event create.

A fresh local control plane (etcd + kube-apiserver on loopback) gets ``--pods`` pods; then, for
``--rounds`` rounds over the next ``--round-pods`` pods each, every pod gets its calls through
the generated client's path (kept here, in :class:`GeneratedClientKube`, and nowhere else) and
through ``Kube``, alternating which goes first from one pod to the next, each timed on its own
in this process's CPU seconds (``time.process_time``: the API server's CPU is not ours) and wall
seconds, from one thread. Interleaving pod by pod cancels most of the drift of a shared
machine's load, which moves by tens of percent from one second to the next. The summary gives
each path's median per call over the rounds, and the median over rounds of Kube's CPU over the
generated client's. The load average is printed with the figures: they are indicative.

Run: ``.venv/bin/python -m bench.operator.calls`` (2,000 pods, 8 rounds of 750 calls per path:
about a minute and a half on a loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import kubernetes.client
import urllib3
from kubernetes.client.rest import ApiException

from mamori.kubeconfig import load_client_configuration
from mamori_dev.controlplane import LocalControlPlane
from mamori_operator.api.kube import (
    DEFAULT_TIMEOUT,
    JSON,
    Kube,
    KubeError,
    pod_path,
)
from mamori_operator.metrics import Metrics

NAMESPACE_PODS = 100  # pods per namespace
FILL_WORKERS = 8
WARM_UP_PODS = 50  # calls made through both paths before any round is timed
PATHS = ("generated client", "kube")


class GeneratedClientKube(Kube):
    """``Kube`` with each call through ``ApiClient.call_api``, as kube.py made them before
    issue 16; only here, to measure against."""

    def __init__(self, configuration: kubernetes.client.Configuration, *, pool: int) -> None:
        super().__init__(configuration, metrics=Metrics(), pool=pool)
        self.api = kubernetes.client.ApiClient(configuration)

    def close(self) -> None:
        super().close()
        self.api.rest_client.pool_manager.clear()
        self.api.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        resource: str,
        body: object = None,
        content_type: str = JSON,
        query: Sequence[tuple[str, str]] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        if method != "GET" and self.fence is not None and self.fence.is_set():
            raise KubeError(0, "NotLeader", "this replica lost the leader Lease: no more writes")
        self.metrics.api_requests.labels(verb=method.lower(), resource=resource).inc()
        try:
            response = self.api.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Content-Type": content_type, "Accept": JSON},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as error:
            raise KubeError(int(error.status or 0), str(error.reason), str(error.body)) from None
        except (OSError, urllib3.exceptions.HTTPError) as error:
            raise KubeError(0, "Unreachable", str(error)) from None
        data = response.data
        return json.loads(data) if data else {}


def parallel(tasks: Iterable[Callable[[], object]], *, workers: int = FILL_WORKERS) -> None:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


def pod_body(name: str, index: int) -> dict[str, Any]:
    """A restricted-profile pod with two containers, about the size of a real one's spec."""
    security = {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "metadata": {"name": name, "labels": {"app": "calls", "shard": str(index % 10)}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": f"registry.example/app-{index % 50}:1.0",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [{"name": "MODE", "value": "bench"}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    "securityContext": security,
                },
                {
                    "name": "sidecar",
                    "image": "registry.example/proxy:2.0",
                    "securityContext": security,
                },
            ]
        },
    }


def fill(kube: Kube, pods: int) -> list[tuple[str, str]]:
    """``pods`` pods in namespaces of ``NAMESPACE_PODS``; their (namespace, name)."""
    namespaces = [f"calls-{i:03d}" for i in range((pods + NAMESPACE_PODS - 1) // NAMESPACE_PODS)]
    parallel(
        functools.partial(
            kube.create, "/api/v1/namespaces", {"metadata": {"name": n}}, resource="namespaces"
        )
        for n in namespaces
    )
    keys = [(namespaces[i // NAMESPACE_PODS], f"web-{i:05d}") for i in range(pods)]
    parallel(
        functools.partial(
            kube.create, f"/api/v1/namespaces/{ns}/pods", pod_body(name, i), resource="pods"
        )
        for i, (ns, name) in enumerate(keys)
    )
    return keys


def event_body(namespace: str, name: str, uid: str, stamp: int) -> dict[str, Any]:
    """A core/v1 Event as the operator's EventRecorder writes one (mamori/events.py)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{stamp:x}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "type": "Warning",
        "reason": "VulnerableImage",
        "message": "image registry.example/app@sha256:… has 1 critical vulnerability",
        "source": {"component": "mamori-operator"},
        "reportingComponent": "mamori-operator",
        "reportingInstance": "mamori-operator-0",
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
    }


def cold_start_calls(kube: Kube, keys: Sequence[tuple[str, str]], marker: str) -> int:
    """What a cold start does per pod: patch its scan annotations, read it, post an Event."""
    calls = 0
    for namespace, name in keys:
        path = pod_path(namespace, name)
        patched = kube.merge_patch(
            path,
            {
                "metadata": {
                    "annotations": {
                        "mamori.io/scan-status": "vulnerable",
                        "mamori.io/scan-summary": f"critical=1 low=3 ({marker})",
                        "mamori.io/scanned-at": "2026-01-01T00:00:00Z",
                    }
                }
            },
            resource="pods",
        )
        current = kube.get(path, resource="pods")
        assert current is not None, path
        stamp = time.time_ns()
        uid = str(patched["metadata"]["uid"])
        kube.create(
            f"/api/v1/namespaces/{namespace}/events",
            event_body(namespace, name, uid, stamp),
            resource="events",
        )
        calls += 3
    return calls


def interleaved_round(
    clients: Mapping[str, Kube], keys: Sequence[tuple[str, str]], marker: str
) -> dict[str, dict[str, float]]:
    """Each pod's calls through each path in turn, the order swapped from one pod to the next,
    each timed on its own: a shared machine's load drifts over seconds, not over one pod."""
    cpu = dict.fromkeys(clients, 0.0)
    wall = dict.fromkeys(clients, 0.0)
    calls = dict.fromkeys(clients, 0)
    paths = list(clients)
    for index, key in enumerate(keys):
        for path in paths if index % 2 == 0 else paths[::-1]:
            started_cpu, started_wall = time.process_time(), time.perf_counter()
            calls[path] += cold_start_calls(clients[path], [key], f"{marker} {path}")
            cpu[path] += time.process_time() - started_cpu
            wall[path] += time.perf_counter() - started_wall
    return {
        path: {
            "calls": calls[path],
            "cpu_s": round(cpu[path], 3),
            "cpu_us_per_call": round(cpu[path] / calls[path] * 1e6, 1),
            "wall_us_per_call": round(wall[path] / calls[path] * 1e6, 1),
        }
        for path in paths
    }


def run(pods: int, rounds: int, round_pods: int) -> dict[str, Any]:
    """``rounds`` rounds over the next ``round_pods`` pods of the cluster each, both paths
    interleaved pod by pod."""
    load_before = os.getloadavg()
    with LocalControlPlane() as cp:
        clients = {
            "generated client": GeneratedClientKube(
                load_client_configuration(cp.kubeconfig), pool=FILL_WORKERS
            ),
            "kube": Kube(
                load_client_configuration(cp.kubeconfig), metrics=Metrics(), pool=FILL_WORKERS
            ),
        }
        try:
            started = time.monotonic()
            keys = fill(clients["kube"], pods)
            filled = time.monotonic() - started
            print(f"bench: {pods} pods created in {filled:.1f}s", file=sys.stderr)
            for path, kube in clients.items():
                cold_start_calls(kube, keys[:WARM_UP_PODS], f"warm-up {path}")
            results: dict[str, list[dict[str, float]]] = {path: [] for path in PATHS}
            size = min(round_pods, len(keys))
            for number in range(rounds):
                first = number * size % len(keys)
                measured = interleaved_round(
                    clients, (keys + keys)[first : first + size], f"round {number}"
                )
                for path, result in measured.items():
                    results[path].append(result)
                print(f"bench: round {number}: {json.dumps(measured)}", file=sys.stderr)
        finally:
            for kube in clients.values():
                kube.close()
    per_call = {
        path: statistics.median(r["cpu_us_per_call"] for r in results[path]) for path in PATHS
    }
    ratios = [
        new["cpu_us_per_call"] / old["cpu_us_per_call"]
        for old, new in zip(results["generated client"], results["kube"], strict=True)
    ]
    return {
        "pods": pods,
        "rounds": rounds,
        "calls_per_round": 3 * size,
        "rounds_by_path": results,
        "cpu_us_per_call_median": per_call,
        "kube_over_generated_median_of_rounds": round(statistics.median(ratios), 3),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def summary(result: dict[str, Any]) -> str:
    before = result["cpu_us_per_call_median"]["generated client"]
    after = result["cpu_us_per_call_median"]["kube"]
    ratio = result["kube_over_generated_median_of_rounds"]
    return (
        f"client CPU per call ({result['pods']} pods, {result['rounds']} rounds of "
        f"{result['calls_per_round']} calls per path, medians): generated client {before:.0f} µs, "
        f"Kube {after:.0f} µs; Kube/generated per round {ratio:.2f} "
        f"({1 - ratio:.0%} less); load average {result['loadavg_before'][0]:.2f} before, "
        f"{result['loadavg_after'][0]:.2f} after"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000, help="pods in the cluster")
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds per path")
    parser.add_argument("--round-pods", type=int, default=250, help="pods per round (3 calls each)")
    args = parser.parse_args(argv)
    result = run(args.pods, args.rounds, args.round_pods)
    print(json.dumps(result))
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
