"""What a pod create pays for mamori, through a real API server, beside its alternatives.

One local cluster (tests/integration/cluster.py: control plane + a real node, mamori installed
by helm from our image), three namespaces judged three ways, in one run:

- ``none``: no admission webhook, no Pod Security Admission label (the floor);
- ``psa``: the API server's built-in Pod Security Admission, ``enforce: restricted``, ``latest``;
- ``mamori``: our webhook (3 pods behind its Service, the chart's defaults), selected by label.

For each rate, each mode gets the same open-loop load in turn: compliant pods created with
``dryRun=All`` (the whole admission chain runs, webhooks included, nothing is stored or
scheduled, so the node stays idle and runs are comparable), one every 1/rate s, each timed from
its scheduled send (waiting for a free client thread counts). The client is the Python kubernetes
client on the host, through the cluster's loopback relay: the same overhead for all three modes;
compare the differences. Root only. Not a test: nothing here fails on a figure.

    .venv/bin/python bench/cluster/latency.py --rates 20 50 --seconds 120
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

from tests.chart.helm import Helm
from tests.integration.cluster import LocalCluster, install_mamori
from tests.integration.node_images import renamed_archive
from tests.integration.node_support import restricted_pod_spec

REPOSITORY = Path(__file__).resolve().parents[2]
IMAGE_ARCHIVE = REPOSITORY / ".cache" / "image" / "mamori.oci.tar"
IMAGE = "localhost/mamori:dev"
HELM = REPOSITORY / ".cache" / "helm" / "bin" / "helm"
JUDGED_LABEL = "bench.mamori.io/judged"
NAMESPACES = {
    "none": {},
    "psa": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    },
    "mamori": {JUDGED_LABEL: "yes"},
}
WORKERS = 32
WARM_UP = 20


def compliant_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": restricted_pod_spec(["/bin/sleep", "3600"]),
    }


def measure(
    core: kubernetes.client.CoreV1Api, *, namespace: str, rate: float, seconds: float
) -> dict[str, float]:
    """Open-loop dry-run creates at ``rate``/s for ``seconds``; latency percentiles in ms."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def create(number: int, scheduled: float) -> None:
        try:
            core.create_namespaced_pod(
                namespace, compliant_pod(f"bench-{number}"), dry_run="All", _request_timeout=10
            )
        except Exception as error:  # counted, never hidden
            with lock:
                errors.append(f"{type(error).__name__}: {str(error)[:200]}")
            return
        with lock:
            latencies.append((time.perf_counter() - scheduled) * 1000)

    total = int(rate * seconds)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for number in range(WARM_UP):  # connections open, caches warm: not counted
            pool.submit(create, -number - 1, time.perf_counter()).result()
        latencies.clear()
        started = time.perf_counter()
        for number in range(total):
            scheduled = started + number / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(create, number, scheduled)
    ordered = sorted(latencies)

    def percentile(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0

    return {
        "requests": len(ordered),
        "errors": len(errors),
        "p50_ms": round(percentile(0.50), 2),
        "p90_ms": round(percentile(0.90), 2),
        "p99_ms": round(percentile(0.99), 2),
        "max_ms": round(ordered[-1] if ordered else 0.0, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20.0, 50.0])
    parser.add_argument("--seconds", type=float, default=120.0, help="per rate and mode")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not IMAGE_ARCHIVE.is_file():
        print(f"{IMAGE_ARCHIVE} is missing: run `make image`", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mamori-bench-") as scratch:
        archive = renamed_archive(IMAGE_ARCHIVE, name=IMAGE, destination=Path(scratch) / "i.tar")
        with LocalCluster(images=[archive]) as cluster:
            helm = Helm(HELM, Path(scratch) / "helm", cluster.kubeconfig)
            label = JUDGED_LABEL.replace(".", "\\.")
            install_mamori(
                cluster,
                helm,
                image=IMAGE,
                settings=[f"webhook.namespaceSelector.matchLabels.{label}=yes"],
            )
            for mode, labels in NAMESPACES.items():
                cluster.kubectl("create", "namespace", f"bench-{mode}")
                if labels:
                    pairs = [f"{key}={value}" for key, value in labels.items()]
                    cluster.kubectl("label", "namespace", f"bench-{mode}", *pairs)
            client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
            client.configuration.connection_pool_maxsize = WORKERS
            core = kubernetes.client.CoreV1Api(client)
            for rate in args.rates:
                for mode in NAMESPACES:
                    figures = measure(
                        core, namespace=f"bench-{mode}", rate=rate, seconds=args.seconds
                    )
                    row = {"rate": rate, "mode": mode, **figures}
                    results.append(row)
                    print(json.dumps(row), flush=True)
            client.close()
    print()
    print("| creates/s | admission | p50 ms | p90 ms | p99 ms | max ms | requests | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['rate']:g} | {row['mode']} | {row['p50_ms']} | {row['p90_ms']} | "
            f"{row['p99_ms']} | {row['max_ms']} | {row['requests']} | {row['errors']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
