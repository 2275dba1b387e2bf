"""Engine benchmark: what one verdict costs in mamori, next to the API server's own PSA.

For each workload in :mod:`bench.engine.cases` and each policy (baseline, restricted, and the
admission benchmark's production policy: restricted + trusted registries + digests) it times

- ``evaluate()``: the engine alone, on the decoded object, as every front door calls it;
- the webhook's review: :meth:`mamori_webhook.admission.Admission.review` on the AdmissionReview
  bytes (decode, reserved-annotation guard, evaluate, response, metrics), without HTTP or TLS;

and, when ``--psa-bin`` is given, runs ``tools/psa-bench`` on the same objects (written to a JSON
file) for Pod Security Admission at the matching level, ``latest`` version: the evaluation the
API server does on its already-decoded object, and decode + evaluation. With
``--baseline-tree DIR`` (made by ``bench/engine/baseline_tree.sh COMMIT DIR``) the same timings
of an older mamori run first, in a subprocess, and are printed next to the current ones.

Each figure is microseconds per call, min and median over ``--repeats`` repeats of a loop sized to
about ``--repeat-time`` seconds, with the garbage collector paused during the loop (as ``timeit``
does). Policies are parsed once, as every front door does; nothing is cached between calls.
Run: ``bash bench/engine/run.sh`` (builds psa-bench with Go first).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.engine.cases import POLICY_SPECS, WORKLOADS, policy_document
from mamori.engine import evaluate
from mamori.policy import Policy, parse_policy
from mamori_webhook.admission import Admission
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import StaticPolicySource

NAMESPACE = "shop"
PSA_LEVEL = {"baseline": "baseline", "restricted": "restricted", "production": "restricted"}
RESOURCES = {"Pod": ("", "v1", "pods"), "Deployment": ("apps", "v1", "deployments")}


@dataclass(frozen=True, slots=True)
class Timing:
    """Microseconds per call, one sample per repeat (of every round)."""

    samples: tuple[float, ...]

    @property
    def min_us(self) -> float:
        return min(self.samples)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples)

    def show(self) -> str:
        return f"{self.min_us:.2f} / {self.median_us:.2f}"

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.samples + other.samples)


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    policy: str
    allowed: bool
    rules: tuple[str, ...]
    evaluate: Timing
    review: Timing
    psa_level: str
    psa: dict[str, Any] | None
    baseline: dict[str, Any] | None = None


def measure(call: Callable[[], object], *, repeats: int, repeat_time: float) -> Timing:
    """Microseconds per call: a loop sized to ``repeat_time``, repeated, min and median."""
    number = 1
    while True:
        elapsed = _loop(call, number)
        if elapsed >= repeat_time / 4:
            number = max(1, int(number * repeat_time / elapsed))
            break
        number *= 4
    return Timing(tuple(_loop(call, number) / number * 1e6 for _ in range(repeats)))


def _loop(call: Callable[[], object], number: int) -> float:
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(number):
            call()
        return time.perf_counter() - started
    finally:
        if gc_was_on:
            gc.enable()


def review_body(resource: dict[str, Any]) -> bytes:
    """The AdmissionReview the API server sends for a CREATE of ``resource``."""
    group, version, plural = RESOURCES[resource["kind"]]
    gvk = {"group": group, "version": version, "kind": resource["kind"]}
    gvr = {"group": group, "version": version, "resource": plural}
    request = {
        "uid": str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": resource["metadata"]["name"],
        "namespace": NAMESPACE,
        "operation": "CREATE",
        "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
        "object": resource,
        "oldObject": None,
        "dryRun": False,
    }
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(review, separators=(",", ":")).encode()


def run_psa(binary: Path, *, repeats: int, repeat_time: float) -> dict[tuple[str, str], Any]:
    """(workload, PSA level) → psa-bench's result line."""
    cases = [{"name": name, "object": build()} for name, build in WORKLOADS.items()]
    with tempfile.TemporaryDirectory(prefix="mamori-bench-engine-") as work:
        path = Path(work) / "cases.json"
        path.write_text(json.dumps({"cases": cases}))
        completed = subprocess.run(
            [
                str(binary),
                "--cases",
                str(path),
                "--repeats",
                str(repeats),
                "--repeat-time",
                f"{int(repeat_time * 1000)}ms",
                "--levels",
                "restricted,baseline",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    results = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    return {(result["case"], result["level"]): result for result in results}


def run_baseline(tree: Path, *, repeats: int, repeat_time: float) -> dict[tuple[str, str], Any]:
    """(workload, policy) → the row an older mamori (laid out in ``tree``) measures."""
    with tempfile.TemporaryDirectory(prefix="mamori-bench-baseline-") as work:
        out = Path(work) / "rows.json"
        environment = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.engine.bench",
                "--no-psa",
                "--rounds",
                "1",
                "--repeats",
                str(repeats),
                "--repeat-time",
                str(repeat_time),
                "--json",
                str(out),
            ],
            cwd=tree,  # so that `mamori` is the tree's, not the installed one
            env=environment,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=900,
        )
        rows = json.loads(out.read_text())
    return {(row["workload"], row["policy"]): row for row in rows}


def bench(args: argparse.Namespace) -> list[Row]:
    """``--rounds`` rounds of (older mamori if asked, then this one), samples pooled; then PSA.

    Alternating rounds spread the load of a shared machine over both sides of a comparison.
    """
    rows: list[Row] = []
    baseline: dict[tuple[str, str], Any] = {}
    for _ in range(args.rounds):
        if args.baseline_tree:
            older = run_baseline(
                args.baseline_tree, repeats=args.repeats, repeat_time=args.repeat_time
            )
            baseline = {key: _pooled(baseline.get(key), row) for key, row in older.items()}
        current = bench_round(args)
        rows = current if not rows else [_pool(a, b) for a, b in zip(rows, current, strict=True)]
    psa = (
        run_psa(args.psa_bin, repeats=args.repeats, repeat_time=args.repeat_time)
        if args.psa_bin
        else {}
    )
    return [
        replace(
            row,
            psa=psa.get((row.workload, row.psa_level)),
            baseline=baseline.get((row.workload, row.policy)),
        )
        for row in rows
    ]


def _pool(first: Row, second: Row) -> Row:
    return replace(
        first, evaluate=first.evaluate + second.evaluate, review=first.review + second.review
    )


def _pooled(first: dict[str, Any] | None, second: dict[str, Any]) -> dict[str, Any]:
    """Two rounds of an older mamori's JSON row, samples pooled."""
    if first is None:
        return second
    pooled = dict(second)
    for key in ("evaluate", "review"):
        pooled[key] = {"samples": [*first[key]["samples"], *second[key]["samples"]]}
    return pooled


def bench_round(args: argparse.Namespace) -> list[Row]:
    """Every workload under every policy, timed once (``--repeats`` samples each)."""
    policies: dict[str, Policy] = {
        name: parse_policy(policy_document(name)) for name in POLICY_SPECS
    }
    rows: list[Row] = []
    for workload, build in WORKLOADS.items():
        resource = build()
        body = review_body(resource)
        for name, policy in policies.items():
            decision = evaluate(resource, [policy], namespace=NAMESPACE)
            assert decision is not None
            admission = Admission(
                policy_source=StaticPolicySource([policy]), metrics=AdmissionMetrics()
            )
            verdict = admission.review(body)
            if verdict.response["response"]["allowed"] is not decision.allowed:
                raise SystemExit(f"{workload}/{name}: the webhook and evaluate() disagree")
            timing = measure(
                lambda resource=resource, policy=policy: evaluate(
                    resource, [policy], namespace=NAMESPACE
                ),
                repeats=args.repeats,
                repeat_time=args.repeat_time,
            )
            review = measure(
                lambda admission=admission, body=body: admission.review(body),
                repeats=args.repeats,
                repeat_time=args.repeat_time,
            )
            rows.append(
                Row(
                    workload=workload,
                    policy=name,
                    allowed=decision.allowed,
                    rules=tuple(sorted({v.rule for v in decision.violations})),
                    evaluate=timing,
                    review=review,
                    psa_level=PSA_LEVEL[name],
                    psa=None,
                )
            )
    return rows


def render(rows: list[Row]) -> str:
    lines = []
    if any(row.baseline for row in rows):
        lines += [
            "| workload | policy | evaluate() µs before | after | speed-up "
            "| webhook review µs before | after | speed-up |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            if row.baseline is None:
                continue
            before = Timing(tuple(row.baseline["evaluate"]["samples"]))
            review_before = Timing(tuple(row.baseline["review"]["samples"]))
            lines.append(
                f"| {row.workload} | {row.policy} | {before.show()} | {row.evaluate.show()} | "
                f"{before.min_us / row.evaluate.min_us:.1f}x | {review_before.show()} | "
                f"{row.review.show()} | {review_before.min_us / row.review.min_us:.1f}x |"
            )
        lines.append("")
    lines += [
        "| workload | policy | verdict | mamori evaluate() µs | mamori webhook review µs "
        "| PSA level | PSA evaluate µs | PSA decode+evaluate µs | evaluate() / PSA |",
        "|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        verdict = "allowed" if row.allowed else f"denied ({len(row.rules)} rules)"
        psa_cells = ["—", "—", "—"]
        if row.psa is not None:
            evaluate_ns, decode_ns = row.psa["evaluate_ns"], row.psa["decode_evaluate_ns"]
            psa_cells = [
                f"{evaluate_ns['min'] / 1000:.2f} / {evaluate_ns['median'] / 1000:.2f}",
                f"{decode_ns['min'] / 1000:.2f} / {decode_ns['median'] / 1000:.2f}",
                f"{row.evaluate.min_us / (evaluate_ns['min'] / 1000):.1f}x",
            ]
        lines.append(
            f"| {row.workload} | {row.policy} | {verdict} | {row.evaluate.show()} | "
            f"{row.review.show()} | {row.psa_level} | " + " | ".join(psa_cells) + " |"
        )
    lines.append("")
    lines.append("Times are min / median µs per call. Verdicts, mamori vs PSA at the same level:")
    for row in rows:
        if row.psa is None or row.policy == "production":
            continue
        psa_verdict = (
            "allowed" if row.psa["allowed"] else "denied: " + ", ".join(row.psa["forbidden"])
        )
        mamori = "allowed" if row.allowed else "denied: " + ", ".join(row.rules)
        lines.append(f"- {row.workload} / {row.policy}: mamori {mamori}; PSA {psa_verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="samples per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds, pooled")
    parser.add_argument("--repeat-time", type=float, default=0.05, help="seconds per repeat")
    parser.add_argument("--psa-bin", type=Path, help="tools/psa-bench binary (run.sh builds it)")
    parser.add_argument("--no-psa", action="store_true", help="time mamori only")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="an older mamori laid out by bench/engine/baseline_tree.sh, timed first",
    )
    args = parser.parse_args(argv)
    if args.no_psa:
        args.psa_bin = None
    started = time.monotonic()
    rows = bench(args)
    print(f"python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(render(rows))
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
