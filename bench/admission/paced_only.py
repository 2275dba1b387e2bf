"""The even rate alone: the floors and the webhook at ``--rate``/s, with one client or both.

``bash bench/admission/run.sh --paced-only [--pacer go|python|both]``: the servers of the full
bench (two no-op floors, ``--flask-webhook``, the webhook), each warmed by a few seconds at the
rate, then ``--rounds`` rounds of ``--rate-duration`` seconds per server and client, the order
of the servers reversed and of the clients swapped every other round so that others' load
falls on all alike. Each row: the achieved rate, latencies from the send and from the schedule,
the client's lateness and CPU per request, the server's CPU per review over the run. No
saturation, no bursts: a few minutes at most, for the p99 question alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.admission import pacers
from bench.admission.bench import (
    Server,
    check_allowed,
    client_label,
    prepare_workspace,
    start_servers,
)

WARM_SECONDS = 3


@dataclass
class Row:
    target: str
    client: str
    round: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    schedule_p50_ms: float
    schedule_p99_ms: float
    schedule_p999_ms: float
    late_sends: int
    client_cpu_ms_per_request: float
    server_cpu_ms_per_review: float
    errors: int
    load: str
    cpu_pressure_pct: float  # share of the row's time in which some task waited for a CPU


def run(args: argparse.Namespace) -> int:
    clients = list(pacers.CLIENTS) if args.pacer == "both" else [args.pacer]
    work, files, common = prepare_workspace(args, prefix="mamori-paced-")
    servers: list[Server] = []
    rows: list[Row] = []
    loads = {"start": load()}
    print(f"load average at start: {loads['start']}", flush=True)
    try:
        start_servers(args, work=work, common=common, into=servers)
        check_allowed(servers[-1], files["body"].read_bytes())
        for server in servers:
            even(server, clients[0], args, files, seconds=WARM_SECONDS)  # untimed
        for round_number in range(1, args.rounds + 1):
            order = servers if round_number % 2 else list(reversed(servers))
            for server in order:
                for client in clients if round_number % 2 else list(reversed(clients)):
                    rows.append(measure(server, client, args, files, round_number))
                    print(table_row(rows[-1]), flush=True)
    finally:
        for server in servers:
            server.stop()
    loads["end"] = load()
    report(rows, args=args, loads=loads)
    if args.json:
        document = {
            "rows": [asdict(row) for row in rows],
            "load_average": loads,
            "settings": vars(args) | {"json": str(args.json)},
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(row.errors == 0 for row in rows) else 1


def even(
    server: Server, client: str, args: argparse.Namespace, files: dict[str, Any], *, seconds: int
) -> dict[str, Any]:
    return pacers.paced(
        server.url,
        client=client,
        body=files["body"],
        cafile=files["ca"],
        seconds=seconds,
        rate=args.rate,
        pin=args.pin_client,
    )


def measure(
    server: Server, client: str, args: argparse.Namespace, files: dict[str, Any], round: int
) -> Row:
    at = load()
    cpu_before = server.cpu_seconds()
    stalled, started = cpu_stalled_us(), time.monotonic()
    figures = even(server, client, args, files, seconds=args.rate_duration)
    pressure = (cpu_stalled_us() - stalled) / 1e4 / (time.monotonic() - started)
    sent = max(args.rate * args.rate_duration, 1)
    schedule = figures["from_schedule"]
    return Row(
        target=server.name,
        client=client,
        round=round,
        rps=figures["rps"],
        p50_ms=figures["p50"],
        p90_ms=figures["p90"],
        p99_ms=figures["p99"],
        p999_ms=figures["p999"],
        max_ms=figures["max"],
        schedule_p50_ms=schedule["p50"],
        schedule_p99_ms=schedule["p99"],
        schedule_p999_ms=schedule["p999"],
        late_sends=int(figures["late_sends"]),
        client_cpu_ms_per_request=figures["client_cpu_ms_per_request"],
        server_cpu_ms_per_review=(server.cpu_seconds() - cpu_before) * 1000 / sent,
        errors=int(figures["errors"]),
        load=at,
        cpu_pressure_pct=pressure,
    )


HEADER = (
    "| server | client | round | achieved /s | from send: p50 / p90 / p99 / p99.9 / max ms "
    "| from schedule: p50 / p99 / p99.9 ms | late sends (> 1 ms) | client CPU ms/request "
    "| server CPU ms/review | errors | load average | CPU pressure % |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
)


def table_row(r: Row) -> str:
    return (
        f"| {r.target} | {r.client} | {r.round} | {r.rps:.1f} | {r.p50_ms:.2f} / {r.p90_ms:.2f} / "
        f"**{r.p99_ms:.2f}** / {r.p999_ms:.2f} / {r.max_ms:.1f} | {r.schedule_p50_ms:.2f} / "
        f"{r.schedule_p99_ms:.2f} / {r.schedule_p999_ms:.2f} | {r.late_sends} | "
        f"{r.client_cpu_ms_per_request:.3f} | {r.server_cpu_ms_per_review:.3f} | {r.errors} | "
        f"{r.load} | {r.cpu_pressure_pct:.0f} |"
    )


def report(rows: list[Row], *, args: Any, loads: dict[str, str]) -> None:
    print(
        f"\nAdmissionReview of a Deployment over TLS, keep-alive, {pacers.CONNECTIONS} "
        f"connections; {args.rate}/s evenly spaced for {args.rate_duration}s per row "
        f"({client_label(args)}); server: {args.workers} workers x {args.threads} threads; "
        f"{args.rounds} rounds; load average {loads['start']} at start, {loads['end']} at end\n"
    )
    print(HEADER)
    for r in rows:
        print(table_row(r))
    print("\nEach server and client over the rounds: median (best-worst)\n")
    print(
        "| server | client | p50 ms | p99 ms | p99.9 ms | p99 from schedule ms "
        "| server CPU ms/review | client CPU ms/request | CPU pressure % | errors |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for target in dict.fromkeys(r.target for r in rows):
        for client in dict.fromkeys(r.client for r in rows):
            mine = [r for r in rows if r.target == target and r.client == client]
            print(
                f"| {target} | {client} | {spread(mine, 'p50_ms')} | {spread(mine, 'p99_ms')} "
                f"| {spread(mine, 'p999_ms')} | {spread(mine, 'schedule_p99_ms')} "
                f"| {spread(mine, 'server_cpu_ms_per_review', 3)} "
                f"| {spread(mine, 'client_cpu_ms_per_request', 3)} "
                f"| {spread(mine, 'cpu_pressure_pct', 0)} "
                f"| {sum(r.errors for r in mine)} |"
            )


def spread(rows: list[Row], field: str, digits: int = 2) -> str:
    values = [getattr(r, field) for r in rows]
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_stalled_us() -> int:
    """Microseconds in which some task waited for a CPU, since boot (Linux pressure stall
    information; 0 without it): over a row, it says how much others' load was in the way."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(first.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return 0
