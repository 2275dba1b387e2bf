"""Slow-clients benchmark: server candidates side by side, with and without 200 slow connections.

For each candidate (bench/admission/candidates.py) and each app (the no-op floor, then the
webhook's full rule set): saturation with ``wrk`` and latency at a fixed rate with ``paced.py``
(16 keep-alive connections, like an API server), first on a quiet server, then while
``slow_load.py`` holds 200 slow or silent connections open (reopening those the server drops).
Loopback only, bounded in time (about 30 s per candidate and app). Not a test: it prints a
table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.admission.bench import ROOT, Server, paced, prepare_workspace, wrk
from bench.admission.candidates import CANDIDATES

SLOW_OPEN_TIMEOUT = 60


@dataclass
class Row:
    candidate: str
    app: str
    slow: bool
    round: int = 0
    figures: dict[str, Any] = field(default_factory=dict)


def saturate(server: Server, files: dict[str, Path], seconds: int) -> dict[str, Any]:
    cpu_before = server.cpu_seconds()
    try:
        found = wrk(server.url, script=files["lua"], seconds=seconds, threads=1, connections=16)
    except (subprocess.SubprocessError, AttributeError, KeyError) as error:
        return {"failed": type(error).__name__}
    # The steady figure on a shared machine: others' load moves wall-clock rates, not this.
    cpu_ms = (server.cpu_seconds() - cpu_before) * 1000
    return found | {"cpu_ms": cpu_ms / found["count"] if found["count"] else None}


def steady(server: Server, files: dict[str, Path], seconds: int, rate: int) -> dict[str, Any]:
    try:
        return paced(server.url, body=files["body"], cafile=files["ca"], seconds=seconds, rate=rate)
    except subprocess.SubprocessError as error:
        return {"failed": type(error).__name__}


def readyz_ms(server: Server) -> float | None:
    started = time.monotonic()
    status, _ = server.get("/readyz")
    return (time.monotonic() - started) * 1000 if status == 200 else None


def measure(server: Server, files: dict[str, Path], args: argparse.Namespace) -> list[Row]:
    wrk(server.url, script=files["lua"], seconds=1, threads=1, connections=16)  # warm up
    rows = []
    quiet = Row(server.name, "", slow=False)
    quiet.figures["wrk"] = saturate(server, files, args.duration)
    quiet.figures["paced"] = steady(server, files, args.duration, args.rate)
    quiet.figures["readyz_ms"] = readyz_ms(server)
    rows.append(quiet)
    slow = subprocess.Popen(
        [sys.executable, "-m", "bench.admission.slow_load", "--port", str(server.port),
         "--cafile", str(files["ca"]), "--body", str(files["body"]),
         "--connections", str(args.slow)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    loaded = Row(server.name, "", slow=True)
    try:
        assert slow.stdout is not None
        loaded.figures["slow_open"] = slow.stdout.readline().strip()
        loaded.figures["paced"] = steady(server, files, args.duration, args.rate)
        loaded.figures["readyz_ms"] = readyz_ms(server)
        loaded.figures["wrk"] = saturate(server, files, args.duration)
    finally:
        slow.terminate()
        try:
            out, _ = slow.communicate(timeout=10)
            loaded.figures["slow_end"] = out.strip()
        except subprocess.TimeoutExpired:
            slow.kill()
            slow.communicate()
    rows.append(loaded)
    return rows


def cell(figures: dict[str, Any], key: str) -> str:
    found = figures.get(key) or {}
    if "failed" in found:
        return f"failed ({found['failed']})"
    if key == "wrk" and not found.get("count"):
        return "no answer"
    if key == "wrk":
        return (
            f"{found['rps']:,.0f}/s, {found['p50']:.2f} / {found['p99']:.2f}, {found['cpu_ms']:.2f}"
        )
    return f"{found['p50']:.2f} / {found['p99']:.2f} / {found['max']:.1f}"


def errors(figures: dict[str, Any]) -> str:
    wrk_errors = (figures.get("wrk") or {}).get("errors", "?")
    paced_errors = (figures.get("paced") or {}).get("errors", "?")
    return f"{wrk_errors} / {paced_errors}"


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\nwrk -t1 -c16 {args.duration}s (saturation, keep-alive); paced.py {args.rate}/s for "
        f"{args.duration}s on 16 keep-alive connections; with {args.slow} slow connections "
        f"held open by slow_load.py; {args.workers} workers x {args.threads} threads\n"
    )
    print(
        "| server | app | round | slow conns | saturated: reviews/s, p50 / p99 ms, server CPU ms "
        f"| {args.rate}/s: p50 / p99 / max ms | /readyz ms | errors wrk / paced |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        ready = row.figures.get("readyz_ms")
        print(
            f"| {row.candidate} | {row.app} | {row.round} | {args.slow if row.slow else 0} | "
            f"{cell(row.figures, 'wrk')} | {cell(row.figures, 'paced')} | "
            f"{'no answer' if ready is None else f'{ready:.1f}'} | {errors(row.figures)} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--apps", nargs="+", default=["noop", "webhook"])
    parser.add_argument("--duration", type=int, default=5, help="seconds of each load run")
    parser.add_argument("--rate", type=int, default=300, help="requests/s of the latency run")
    parser.add_argument("--slow", type=int, default=200, help="slow connections held open")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y wrk")

    work, files, common = prepare_workspace(args, prefix="mamori-slow-bench-")
    common += ["--policy", str(work / "policy.yaml")]
    rows: list[Row] = []
    for round_number in range(1, args.rounds + 1):  # alternate, so others' load hits all alike
        for candidate in args.candidates:
            for app in args.apps:
                rows.extend(run_one(candidate, app, round_number, common, work, files, args))
    report(rows, args)
    if args.json:
        args.json.write_text(
            json.dumps([row.__dict__ | {"figures": summary(row.figures)} for row in rows], indent=2)
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


def run_one(
    candidate: str,
    app: str,
    round_number: int,
    common: list[str],
    work: Path,
    files: dict[str, Path],
    args: argparse.Namespace,
) -> list[Row]:
    argv = [sys.executable, "-m", "bench.admission.candidates", candidate, app, *common]
    log = work / f"{candidate}-{app}-{round_number}.log"
    try:
        server = Server(candidate, argv, log=log, ca_file=work / "ca.crt")
    except SystemExit as error:
        print(f"{candidate} {app}: {error}\n{log.read_text()[-2000:]}", file=sys.stderr)
        return []
    try:
        rows = measure(server, files, args)
    finally:
        server.stop()
    for row in rows:
        row.app = "no-op floor" if app == "noop" else "webhook"
        row.round = round_number
        print(json.dumps({"candidate": row.candidate, "app": row.app, "round": round_number,
                          "slow": row.slow} | summary(row.figures)),
              file=sys.stderr, flush=True)  # fmt: skip
    return rows


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures without wrk's raw output."""
    return {
        key: ({k: v for k, v in value.items() if k != "raw"} if isinstance(value, dict) else value)
        for key, value in figures.items()
    }


if __name__ == "__main__":
    sys.exit(main())
