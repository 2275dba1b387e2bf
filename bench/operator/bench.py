"""Operator benchmark: 500 namespaces and 5,000 running pods, from a cold start to converged.

A fresh local control plane (etcd + kube-apiserver on loopback) is filled with namespaces,
pods whose status is written the way a kubelet writes it (imageID with a digest), and ImageScan
objects for the 50 distinct images (as a CI pipeline would write them). Then ``mamori operator``
starts as its own process and we measure:

- time to converge: operator start → one managed NetworkPolicy in every namespace and a scan
  status on every pod (read from the operator's own counters, then checked against the API);
- operator memory: resident set at convergence and its peak (VmHWM);
- API calls per pod event: the operator's request counter over its pod-event counter, for the
  cold start, for pod churn that changes nothing mamori cares about, and for new pods.

Everything stays on 127.0.0.1 and every wait has a deadline. The figures go into
docs/benchmarks.md by hand. Run: ``.venv/bin/python -m bench.operator.bench``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import yaml

from mamori_dev.controlplane import LocalControlPlane

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "charts/mamori/crds").glob("*.yaml"))
IMAGES = 50
LABEL = {"bench": "operator"}


def digest(index: int) -> str:
    return "sha256:" + hashlib.sha256(f"image-{index}".encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def parallel(tasks: Iterable[Callable[[], Any]], *, workers: int = 16) -> None:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


class Cluster:
    def __init__(self, kubeconfig: Path, pool: int = 32) -> None:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(str(kubeconfig), client_configuration=configuration)
        configuration.connection_pool_maxsize = pool
        self.api = kubernetes.client.ApiClient(configuration)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.net = kubernetes.client.NetworkingV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.ext = kubernetes.client.ApiextensionsV1Api(self.api)

    def install_crds(self) -> None:
        for path in CRDS:
            self.ext.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        for path in CRDS:
            name = yaml.safe_load(path.read_text())["metadata"]["name"]
            wait(
                lambda name=name: any(
                    c.type == "Established" and c.status == "True"
                    for c in self.ext.read_custom_resource_definition(name).status.conditions or []
                ),
                timeout=60,
                what=f"CRD {name}",
            )

    def pod(self, namespace: str, name: str, image: int) -> None:
        body = {
            "metadata": {"name": name, "labels": {"app": name.rsplit("-", 1)[0]}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": f"registry.example.com/app-{image}:1.0",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ]
            },
        }
        self.core.create_namespaced_pod(namespace, body)
        self.core.patch_namespaced_pod_status(
            name,
            namespace,
            {
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "app",
                            "image": f"registry.example.com/app-{image}:1.0",
                            "imageID": f"registry.example.com/app-{image}@{digest(image)}",
                            "ready": True,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                        }
                    ],
                }
            },
        )

    def image_scan(self, index: int) -> None:
        critical = 1 if index % 5 == 0 else 0  # one image in five is vulnerable
        self.custom.create_cluster_custom_object(
            "mamori.io",
            "v1alpha1",
            "imagescans",
            {
                "apiVersion": "mamori.io/v1alpha1",
                "kind": "ImageScan",
                "metadata": {"name": digest(index).replace(":", "-")},
                "spec": {
                    "digest": digest(index),
                    "repository": f"registry.example.com/app-{index}",
                    "scanner": "bench-ci",
                    "scannedAt": "2026-01-01T00:00:00Z",
                    "summary": {"critical": critical, "low": 3},
                },
            },
        )

    def count_annotated_pods(self) -> int:
        count, token = 0, None
        while True:
            page = self.core.list_pod_for_all_namespaces(
                label_selector="app", limit=1000, _continue=token
            )
            count += sum(
                1
                for pod in page.items
                if (pod.metadata.annotations or {}).get("mamori.io/scan-status")
            )
            token = page.metadata._continue
            if not token:
                return count

    def count_managed_network_policies(self) -> int:
        items = self.net.list_network_policy_for_all_namespaces(
            label_selector="app.kubernetes.io/managed-by=mamori"
        ).items
        return len(items)


class Operator:
    def __init__(self, kubeconfig: Path, *, workers: int, arena_max: int, log: Path) -> None:
        self.port = free_port()
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mamori.cli",
                "operator",
                "--kubeconfig",
                str(kubeconfig),
                "--no-leader-election",
                "--metrics-port",
                str(self.port),
                "--status-interval",
                "2",
                "--workers",
                str(workers),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "NO_PROXY": "127.0.0.1,localhost",
                **({"MALLOC_ARENA_MAX": str(arena_max)} if arena_max else {}),
            },
        )

    def metrics(self) -> dict[str, float]:
        """Sum of every sample per metric name (labels folded), plus a few by label."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return {}
        totals: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            key, value = line.rsplit(" ", 1)
            name = key.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
            if name == "mamori_operator_api_requests_total":
                totals[key] = float(value)
        return totals

    def memory_kib(self) -> tuple[int, int]:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        values = {
            line.split(":")[0]: int(line.split()[1])
            for line in status.splitlines()
            if line.startswith(("VmRSS", "VmHWM"))
        }
        return values["VmRSS"], values["VmHWM"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def calls(metrics: dict[str, float]) -> float:
    return metrics.get("mamori_operator_api_requests_total", 0.0)


def events(metrics: dict[str, float]) -> float:
    return metrics.get("mamori_operator_pod_events_total", 0.0)


def pod_patches(metrics: dict[str, float]) -> float:
    return metrics.get('mamori_operator_api_requests_total{resource="pods",verb="patch"}', 0.0)


def run(namespaces: int, pods_per_namespace: int, workers: int, arena_max: int) -> dict[str, Any]:
    total_pods = namespaces * pods_per_namespace
    with tempfile.TemporaryDirectory(prefix="mamori-bench-") as scratch, LocalControlPlane() as cp:
        cluster = Cluster(cp.kubeconfig)
        cluster.install_crds()
        started = time.monotonic()
        names = [f"bench-{i:03d}" for i in range(namespaces)]
        parallel(
            lambda n=n: cluster.core.create_namespace({"metadata": {"name": n, "labels": LABEL}})
            for n in names
        )
        parallel(
            lambda n=n, p=p: cluster.pod(n, f"web-{p}", (int(n[-3:]) + p) % IMAGES)
            for n in names
            for p in range(pods_per_namespace)
        )
        parallel(lambda i=i: cluster.image_scan(i) for i in range(IMAGES))
        cluster.custom.create_cluster_custom_object(
            "mamori.io",
            "v1alpha1",
            "clustersecuritypolicies",
            {
                "apiVersion": "mamori.io/v1alpha1",
                "kind": "ClusterSecurityPolicy",
                "metadata": {"name": "bench"},
                "spec": {
                    "enforcement": "Audit",
                    "requireImageDigest": True,  # every bench pod is tagged: all are offenders
                    "namespaceSelector": {"matchLabels": LABEL},
                    "networkPolicy": {},
                    "imageScan": {"providers": ["imagescan"]},
                },
            },
        )
        setup_seconds = time.monotonic() - started
        print(f"bench: cluster filled in {setup_seconds:.1f}s", file=sys.stderr)

        operator = Operator(
            cp.kubeconfig, workers=workers, arena_max=arena_max, log=Path(scratch) / "operator.log"
        )
        try:
            started = time.monotonic()
            wait(
                lambda: (
                    (m := operator.metrics())
                    and pod_patches(m) >= total_pods
                    and m.get("mamori_operator_network_policy_repairs_total", 0) == 0
                    and cluster_converged(cluster, namespaces, m)
                    # the first re-list and kopf's own listing may both reach a pod: count
                    # annotated pods, not patches alone
                    and cluster.count_annotated_pods() >= total_pods
                ),
                timeout=900,
                what="convergence",
                every=1.0,
            )
            converge_seconds = time.monotonic() - started
            cold = operator.metrics()
            rss, peak = operator.memory_kib()
            annotated = cluster.count_annotated_pods()
            managed = cluster.count_managed_network_policies()
            status = wait(
                lambda: (
                    (s := policy_status(cluster)).get("pods", {}).get("total") == total_pods and s
                ),
                timeout=120,
                what="policy status",
            )

            # churn mamori does not care about: a label change on 1,000 pods
            churned = min(1000, total_pods)
            before = operator.metrics()
            parallel(
                lambda i=i: cluster.core.patch_namespaced_pod(
                    f"web-{i % pods_per_namespace}",
                    names[i // pods_per_namespace],
                    {"metadata": {"labels": {"churn": "1"}}},
                )
                for i in range(churned)
            )
            wait(
                lambda: events(operator.metrics()) >= events(before) + churned,
                timeout=300,
                what="churn events",
            )
            after_churn = operator.metrics()

            # new pods: created, then the kubelet reports them running
            fresh = min(500, total_pods)
            parallel(
                lambda i=i: cluster.pod(names[i % namespaces], f"new-{i}", i % IMAGES)
                for i in range(fresh)
            )
            wait(
                lambda: pod_patches(operator.metrics()) >= pod_patches(after_churn) + fresh,
                timeout=300,
                what="new pods annotated",
            )
            wait(
                lambda: events(operator.metrics()) >= events(after_churn) + 3 * fresh,
                timeout=120,
                what="echoes of the new pods' patches",
            )
            after_new = operator.metrics()
        finally:
            operator.stop()

    return {
        "namespaces": namespaces,
        "pods": total_pods,
        "distinct_images": IMAGES,
        "operator_workers": workers,
        "malloc_arena_max": arena_max or "default",
        "setup_seconds": round(setup_seconds, 1),
        "converge_seconds": round(converge_seconds, 1),
        "annotated_pods": annotated,
        "managed_network_policies": managed,
        "policy_status_pods": status["pods"],
        "policy_status_violations": status["violations"]["pods"],
        "rss_mib_at_convergence": round(rss / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "cold_start": {
            "pod_events": events(cold),
            "api_calls": calls(cold),
            "api_calls_per_pod_event": round(calls(cold) / max(events(cold), 1), 3),
        },
        "churn_no_change": {
            "pod_events": events(after_churn) - events(before),
            "api_calls": calls(after_churn) - calls(before),
            "api_calls_per_pod_event": round(
                (calls(after_churn) - calls(before)) / max(events(after_churn) - events(before), 1),
                3,
            ),
        },
        "new_pods": {
            "pods": fresh,
            "pod_events": events(after_new) - events(after_churn),
            "pod_patches": pod_patches(after_new) - pod_patches(after_churn),
            "api_calls": calls(after_new) - calls(after_churn),
            "api_calls_per_pod_event": round(
                (calls(after_new) - calls(after_churn))
                / max(events(after_new) - events(after_churn), 1),
                3,
            ),
        },
    }


def cluster_converged(cluster: Cluster, namespaces: int, metrics: dict[str, float]) -> bool:
    applied = metrics.get(
        'mamori_operator_api_requests_total{resource="networkpolicies",verb="patch"}', 0.0
    )
    return applied >= namespaces and cluster.count_managed_network_policies() >= namespaces


def policy_status(cluster: Cluster) -> dict[str, Any]:
    policy = cluster.custom.get_cluster_custom_object(
        "mamori.io", "v1alpha1", "clustersecuritypolicies", "bench"
    )
    return dict(policy.get("status") or {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=500)
    parser.add_argument("--pods-per-namespace", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8, help="operator handler threads")
    parser.add_argument(
        "--arena-max",
        type=int,
        default=0,
        help="MALLOC_ARENA_MAX for the operator (glibc keeps one arena per thread by default)",
    )
    args = parser.parse_args(argv)
    result = run(args.namespaces, args.pods_per_namespace, args.workers, args.arena_max)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
