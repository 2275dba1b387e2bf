"""Operator benchmark: 5,000 pods in 500 namespaces (or ``--sizes``), from cold start to converged.

A fresh local control plane (etcd + kube-apiserver on loopback) is filled with namespaces,
pods whose status is written the way a kubelet writes it (imageID with a digest), and ImageScan
objects for the 50 distinct images (as a CI pipeline would write them). Then ``mamori operator``
starts as its own process and we measure:

- time to converge: operator start → one managed NetworkPolicy in every namespace and a scan
  status on every pod (read from the operator's own counters, then checked against the API);
- operator memory: resident set at convergence and its peak (VmHWM);
- API calls per pod event: the operator's request counter over its pod-event counter, for the
  cold start, for pod churn that changes nothing mamori cares about, and for new pods;
- a restart: a second operator against the converged cluster, until its view holds every pod
  with its scan status (the API calls that costs, its memory).

Everything stays on 127.0.0.1 and every wait has a deadline. The figures go into
docs/benchmarks.md by hand. Run: ``.venv/bin/python -m bench.operator.bench``; at cluster scale
``--sizes 500x10,2000x25`` (one fresh control plane per size; a JSON object and a summary line
per size); ``--trace FILE`` for where the operator's memory is (bench/operator/traced.py).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import threading
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
# With --profile: functions whose call counts at convergence are printed (file suffix, name).
PROFILED_CALLS = {
    "audit_judgments": ("status/audit.py", "_judge"),
    "scan_refreshes": ("scanning/scanner.py", "_refresh_pod"),
}


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


OPERATOR_ACCOUNT = ("mamori-system", "mamori-operator")


def service_account_kubeconfig(cluster: Cluster, admin: Path, out: Path) -> Path:
    """A kubeconfig for the operator as it runs in a cluster: a ServiceAccount's token (bound to
    cluster-admin here). With the admin's client certificate instead, the API server verifies an
    ECDSA certificate chain on every request (x509 authentication keeps no cache; a token's
    review is cached): 9 % of its CPU at 5,000 pods, which no installed operator costs it."""
    namespace, name = OPERATOR_ACCOUNT
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    kubernetes.client.RbacAuthorizationV1Api(cluster.api).create_cluster_role_binding(
        {
            "metadata": {"name": "mamori-operator-bench"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    token = cluster.core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 24 * 3600}}
    ).status.token
    config = yaml.safe_load(admin.read_text())
    context = config["contexts"][0]["context"]
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    context["user"] = "operator"
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


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
        """Pods carrying a scan status, read as plain JSON (the generated client's models
        would cost the bench a minute per check at 50,000 pods, inflating converge times)."""
        count, token = 0, ""
        while True:
            query = [("labelSelector", "app"), ("limit", "1000")]
            if token:
                query.append(("continue", token))
            page = self.raw_get("/api/v1/pods", query)
            count += sum(
                1
                for pod in page["items"]
                if ((pod.get("metadata") or {}).get("annotations") or {}).get(
                    "mamori.io/scan-status"
                )
            )
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return count

    def raw_get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        response = self.api.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        return dict(json.loads(response.data))

    def pod_json_bytes(self) -> float:
        """Mean size of a pod as the API serves it (what every watch event of it carries)."""
        items = self.raw_get("/api/v1/pods", [("limit", "500")])["items"]
        return sum(len(json.dumps(item, separators=(",", ":"))) for item in items) / len(items)

    def count_managed_network_policies(self) -> int:
        items = self.net.list_network_policy_for_all_namespaces(
            label_selector="app.kubernetes.io/managed-by=mamori"
        ).items
        return len(items)


class Operator:
    def __init__(
        self,
        kubeconfig: Path,
        *,
        workers: int,
        arena_max: int,
        log: Path,
        trace: Path | None,
        lazy_client: bool = False,
    ) -> None:
        self.port = free_port()
        self._log = log.open("w")
        self.trace = trace
        entry = ["bench.operator.traced", str(trace)] if trace else ["mamori.cli"]
        if lazy_client and not trace:
            entry = ["bench.operator.lazy_client"]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                *entry,
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
                **({"MAMORI_BENCH_LAZY_CLIENT": "1"} if lazy_client else {}),
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

    def dump_trace(self, label: str) -> None:
        """Ask a traced operator (``--trace``) to append its heap and task counts to the file."""
        if self.trace is None:
            return
        with self.trace.open("a") as stream:
            stream.write(f"== {label}\n")
        request = self.trace.with_name(self.trace.name + ".request")
        request.touch()
        wait(lambda: not request.exists(), timeout=600, what="the trace dump")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


class Timeline:
    """The operator's resident set and CPU, and the control plane's CPU, every ``every``
    seconds from the operator's start, with the counters the convergence check last read: where
    the peak happens (start-up, listing, patching, steady state) and what was running then."""

    def __init__(
        self,
        operator: Operator,
        control_plane: list[int],
        every: float = 0.25,
        out: Path | None = None,
        label: dict[str, int] | None = None,
    ) -> None:
        self.operator = operator
        self.out = out  # each sample is appended as it is taken: a run cut short keeps them
        self.label = label or {}
        self.control_plane = control_plane
        self.every = every
        self.samples: list[dict[str, float]] = []
        self.counters: dict[str, float] = {}
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._cp_cpu = sum(cpu_seconds(pid) for pid in control_plane)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def note(self, metrics: dict[str, float]) -> dict[str, float]:
        """Remember the counters of a metrics read (returns them, for use in predicates)."""
        if metrics:
            self.counters = {
                "patches": pod_patches(metrics),
                "events": events(metrics),
                "calls": calls(metrics),
            }
        return metrics

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                rss, peak = self.operator.memory_kib()
                operator_cpu = cpu_seconds(self.operator.process.pid)
            except (OSError, KeyError):
                return
            sample = {
                "t": round(time.monotonic() - self._started, 2),
                "rss_mib": round(rss / 1024, 1),
                "peak_mib": round(peak / 1024, 1),
                "operator_cpu": round(operator_cpu, 2),
                "control_plane_cpu": round(
                    sum(cpu_seconds(pid) for pid in self.control_plane) - self._cp_cpu, 2
                ),
                **self.counters,
            }
            self.samples.append(sample)
            if self.out is not None:
                with self.out.open("a") as stream:
                    stream.write(json.dumps({**self.label, **sample}) + "\n")

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        self._thread.join(5)
        return self.samples


def peak_moment(samples: list[dict[str, float]]) -> dict[str, float]:
    """The first sample at the final peak (what the operator was doing when it peaked)."""
    if not samples:
        return {}
    top = samples[-1]["peak_mib"]
    return next(s for s in samples if s["peak_mib"] >= top)


def calibration_seconds() -> dict[str, float]:
    """CPU and wall seconds this process spends on a fixed piece of work (JSON round trips of
    a pod-sized object, then SHA-256 of 64 MiB: about 0.3 s), the machine otherwise idle.

    This machine has run the same bench at two speeds an hour apart (the same calls cost the
    control plane and the operator twice the CPU seconds; docs/benchmarks.md); a run's figures
    are read next to this reading. It tells the phase (0.27-0.28 s fast, median 0.36 s slow) but
    not how much to correct a run by: the machine's speed moves within the run."""
    body = {
        "metadata": {"name": "web-0", "labels": {"app": "web"}, "annotations": {"a": "b" * 64}},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}] * 4},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}] * 4},
    }
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(20_000):
        json.loads(json.dumps(body))
    hashlib.sha256(bytes(64 << 20)).digest()
    return {
        "cpu": round(time.process_time() - cpu, 3),
        "wall": round(time.perf_counter() - wall, 3),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def calls(metrics: dict[str, float]) -> float:
    return metrics.get("mamori_operator_api_requests_total", 0.0)


def events(metrics: dict[str, float]) -> float:
    return metrics.get("mamori_operator_pod_events_total", 0.0)


def calls_by_request(metrics: dict[str, float]) -> dict[str, float]:
    """verb resource → calls, e.g. ``patch pods``."""
    found: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith("mamori_operator_api_requests_total{"):
            labels = {
                label: value.strip('"')
                for label, value in (
                    part.split("=", 1) for part in key[key.index("{") + 1 : -1].split(",") if part
                )
            }
            name = f"{labels.get('verb', '')} {labels.get('resource', '')}"
            found[name] = found.get(name, 0.0) + value
    return dict(sorted(found.items()))


def pod_patches(metrics: dict[str, float]) -> float:
    return metrics.get('mamori_operator_api_requests_total{resource="pods",verb="patch"}', 0.0)


def run(
    namespaces: int,
    pods_per_namespace: int,
    *,
    workers: int,
    arena_max: int,
    trace: Path | None = None,
    fill_workers: int = 16,
    timeline_file: Path | None = None,
    lazy_client: bool = False,
    admin_certificate: bool = False,
) -> dict[str, Any]:
    total_pods = namespaces * pods_per_namespace
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mamori-bench-") as scratch, LocalControlPlane() as cp:
        cluster = Cluster(cp.kubeconfig)
        cluster.install_crds()
        started = time.monotonic()
        names = [f"bench-{i:03d}" for i in range(namespaces)]
        parallel(
            (
                lambda n=n: cluster.core.create_namespace(
                    {"metadata": {"name": n, "labels": LABEL}}
                )
                for n in names
            ),
            workers=fill_workers,
        )
        parallel(
            (
                lambda i=i, n=n, p=p: cluster.pod(n, f"web-{p}", (i + p) % IMAGES)
                for i, n in enumerate(names)
                for p in range(pods_per_namespace)
            ),
            workers=fill_workers,
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
        operator_kubeconfig = (
            cp.kubeconfig
            if admin_certificate
            else service_account_kubeconfig(cluster, cp.kubeconfig, Path(scratch) / "operator.kc")
        )
        setup_seconds = time.monotonic() - started
        print(f"bench: cluster filled in {setup_seconds:.1f}s", file=sys.stderr)
        calibration_before = calibration_seconds()

        operator = Operator(
            operator_kubeconfig,
            workers=workers,
            arena_max=arena_max,
            log=Path(scratch) / "operator.log",
            trace=trace,
            lazy_client=lazy_client,
        )
        timeline = Timeline(operator, list(cp.pids), out=timeline_file, label={"pods": total_pods})
        try:
            started = time.monotonic()
            control_plane_cpu = sum(cpu_seconds(pid) for pid in cp.pids)
            wait(
                lambda: (
                    (m := timeline.note(operator.metrics()))
                    and pod_patches(m) >= total_pods
                    and m.get("mamori_operator_network_policy_repairs_total", 0) == 0
                    and cluster_converged(cluster, namespaces, m)
                    # the first re-list and kopf's own listing may both reach a pod: count
                    # annotated pods, not patches alone
                    and cluster.count_annotated_pods() >= total_pods
                ),
                timeout=max(900, total_pods // 20),
                what="convergence",
                every=1.0,
            )
            converge_seconds = time.monotonic() - started
            cold = operator.metrics()
            rss, peak = operator.memory_kib()
            operator_cpu = cpu_seconds(operator.process.pid)
            control_plane_cpu = sum(cpu_seconds(pid) for pid in cp.pids) - control_plane_cpu
            operator.dump_trace(f"converged: {total_pods} pods, {namespaces} namespaces")
            calibration_after = calibration_seconds()
            profiled = (
                profiled_calls(trace) if os.environ.get("MAMORI_BENCH_PROFILE") == "1" else {}
            )
            annotated = cluster.count_annotated_pods()
            pod_bytes = cluster.pod_json_bytes()
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
            samples = timeline.stop()
            operator.stop()

        # a restart: every pod already carries its scan status, every NetworkPolicy is there
        restarted = Operator(
            operator_kubeconfig,
            workers=workers,
            arena_max=arena_max,
            log=Path(scratch) / "operator-restarted.log",
            trace=None,
            lazy_client=lazy_client,
        )
        try:
            started = time.monotonic()
            everything = total_pods + fresh
            wait(
                lambda: (
                    (m := restarted.metrics())
                    and m.get("mamori_operator_pods_by_scan_status", 0) >= everything
                    and events(m) >= everything
                ),
                timeout=max(900, total_pods // 20),
                what="the restarted operator's view",
                every=1.0,
            )
            restart_seconds = time.monotonic() - started
            after_restart = restarted.metrics()
            restart_rss, restart_peak = restarted.memory_kib()
        finally:
            restarted.stop()

    return {
        "operator_credentials": "admin certificate" if admin_certificate else "token",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "namespaces": namespaces,
        "pods": total_pods,
        "distinct_images": IMAGES,
        "operator_workers": workers,
        "malloc_arena_max": arena_max or "default",
        "lazy_kubernetes_client": lazy_client,
        "setup_seconds": round(setup_seconds, 1),
        "calibration_seconds": {
            "before_the_operator": calibration_before,
            "at_convergence": calibration_after,
        },
        "converge_seconds": round(converge_seconds, 1),
        "operator_cpu_seconds_at_convergence": round(operator_cpu, 1),
        "control_plane_cpu_seconds_while_converging": round(control_plane_cpu, 1),
        "pod_json_bytes": round(pod_bytes),
        "annotated_pods": annotated,
        "managed_network_policies": managed,
        "policy_status_pods": status["pods"],
        "policy_status_violations": status["violations"]["pods"],
        "rss_mib_at_convergence": round(rss / 1024, 1),
        **({"profiled_calls_at_convergence": profiled} if profiled else {}),
        "peak_rss_mib": round(peak / 1024, 1),
        "peak_rss_reached": peak_moment(
            [sample for sample in samples if sample["t"] <= converge_seconds + 1]
        ),
        "cold_start": {
            "pod_events": events(cold),
            "api_calls": calls(cold),
            "api_calls_per_pod": round(calls(cold) / max(total_pods, 1), 3),
            "api_calls_per_pod_event": round(calls(cold) / max(events(cold), 1), 3),
            "pod_patches_per_pod": round(pod_patches(cold) / max(total_pods, 1), 3),
            "calls": calls_by_request(cold),
        },
        "churn_no_change": {
            "pod_events": events(after_churn) - events(before),
            "api_calls": calls(after_churn) - calls(before),
            "api_calls_per_pod_event": round(
                (calls(after_churn) - calls(before)) / max(events(after_churn) - events(before), 1),
                3,
            ),
        },
        "restart": {
            "pods": total_pods + fresh,
            "seconds_to_full_view": round(restart_seconds, 1),
            "peak_rss_mib": round(restart_peak / 1024, 1),
            "rss_mib": round(restart_rss / 1024, 1),
            "api_calls": calls(after_restart),
            "calls": calls_by_request(after_restart),
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


def profiled_calls(trace: Path | None) -> dict[str, int]:
    """With --profile: how often the audit judged a pod and the scanner refreshed one, from the
    call counts of the operator's statistics dumped at convergence."""
    if trace is None:
        return {}
    table = pstats.Stats(str(trace) + ".pstats").stats  # type: ignore[attr-defined]
    return {
        name: sum(
            counts[1]
            for (path, _line, function), counts in table.items()
            if path.endswith(suffix) and function == wanted
        )
        for name, (suffix, wanted) in PROFILED_CALLS.items()
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
    parser.add_argument(
        "--sizes",
        type=sizes,
        default=None,
        metavar="NSxPODS,…",
        help="run each size on a fresh control plane, e.g. 500x10,2000x25 (namespaces x pods per "
        "namespace); overrides --namespaces and --pods-per-namespace",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        metavar="FILE",
        help="run the operator under tracemalloc and append its heap at convergence to FILE "
        "(slower: take converge times from untraced runs)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="with --trace: profile every operator thread with cProfile instead of tracemalloc",
    )
    parser.add_argument(
        "--fill-workers", type=int, default=16, help="client threads that fill the cluster"
    )
    parser.add_argument("--workers", type=int, default=8, help="operator handler threads")
    parser.add_argument(
        "--timeline",
        type=Path,
        default=None,
        metavar="FILE",
        help="append the operator's RSS, CPU and counters every 0.25 s (JSON lines) to FILE",
    )
    parser.add_argument(
        "--arena-max",
        type=int,
        default=0,
        help="MALLOC_ARENA_MAX for the operator (glibc keeps one arena per thread by default)",
    )
    parser.add_argument(
        "--gc",
        action="store_true",
        help="with --trace: only time the operator's cyclic garbage collector (full speed)",
    )
    parser.add_argument(
        "--lazy-kubernetes-client",
        action="store_true",
        help="start the operator with the kubernetes client's generated API classes and models "
        "imported on first use (mamori_operator.memory.import_kubernetes_client_lazily)",
    )
    parser.add_argument(
        "--admin-certificate",
        action="store_true",
        help="run the operator with the admin's client certificate instead of a ServiceAccount "
        "token (as runs before 2026-12-01 did: the API server verifies it on every request)",
    )
    args = parser.parse_args(argv)
    if args.gc:
        if args.trace is None:
            parser.error("--gc needs --trace FILE (where the collector's figures go)")
        os.environ["MAMORI_BENCH_PROFILE"] = "gc"  # read by bench/operator/traced.py
    if args.profile:
        if args.trace is None:
            parser.error("--profile needs --trace FILE (where the statistics go)")
        os.environ["MAMORI_BENCH_PROFILE"] = "1"  # read by bench/operator/traced.py
    for namespaces, per_namespace in args.sizes or [(args.namespaces, args.pods_per_namespace)]:
        result = run(
            namespaces,
            per_namespace,
            workers=args.workers,
            arena_max=args.arena_max,
            trace=args.trace,
            fill_workers=args.fill_workers,
            timeline_file=args.timeline,
            lazy_client=args.lazy_kubernetes_client,
            admin_certificate=args.admin_certificate,
        )
        print(json.dumps(result, indent=2), flush=True)
        print(summary(result), file=sys.stderr, flush=True)
    return 0


def sizes(text: str) -> list[tuple[int, int]]:
    """``500x10,2000x25`` → [(500, 10), (2000, 25)]."""
    try:
        pairs = [tuple(int(n) for n in part.split("x")) for part in text.split(",")]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NSxPODS[,NSxPODS…], e.g. 500x10")
    return [(p[0], p[1]) for p in pairs]


def summary(result: dict[str, Any]) -> str:
    cold = result["cold_start"]
    calibration = result["calibration_seconds"]
    return (
        f"bench: {result['pods']} pods / {result['namespaces']} namespaces: converged in "
        f"{result['converge_seconds']} s, peak RSS {result['peak_rss_mib']} MiB, "
        f"{cold['api_calls_per_pod']} API calls per pod, {cold['api_calls_per_pod_event']} per "
        f"pod event (cold start), operator CPU {result['operator_cpu_seconds_at_convergence']}"
        f" s, control plane CPU {result['control_plane_cpu_seconds_while_converging']} s "
        f"(calibration CPU {calibration['before_the_operator']['cpu']} → "
        f"{calibration['at_convergence']['cpu']} s);"
        f" restart: full view in {result['restart']['seconds_to_full_view']} s with "
        f"{result['restart']['api_calls']:.0f} API calls, peak RSS "
        f"{result['restart']['peak_rss_mib']} MiB; load average {result['load_average_before']} → "
        f"{result['load_average_after']}"
    )


if __name__ == "__main__":
    sys.exit(main())
