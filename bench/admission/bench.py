"""Admission benchmark: AdmissionReviews/s at saturation and latency at a fixed rate, over TLS.

Three servers on loopback, measured one after the other in the same run: ``mamori webhook``
with the full rule set on a realistic Deployment review, and two no-op floors on the same
gunicorn + TLS front with a constant answer: through Flask (the floor of every figure before
2026-12-01) and through a direct route (the path the webhook's reviews take since then). Load
comes from Debian's ``wrk`` (saturation, keep-alive), an even-rate client (pacers.py: the Go
pacer run.sh builds, or paced.py) and ``hey`` (fixed rate: ``-c`` workers each limited to
``rate / c`` requests per second). Every run is bounded in time; nothing leaves 127.0.0.1. The
figures go into docs/benchmarks.md by hand.

``--policy``, ``--review`` and ``--webhook-arg`` serve the webhook with another policy, review
or flags; ``--signatures`` runs served_signatures.py instead (the webhook with and without
``spec.imageSignatures`` on a real loopback registry); ``--paced-only`` measures only the even
rate, with one or both clients (paced_only.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from bench.admission import pacers, payload
from mamori_dev.localca import LocalCA

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

LISTENING = re.compile(rb"serving on https://127\.0\.0\.1:(\d+)")
HEY_WORKERS = 10


@dataclass
class Result:
    target: str
    saturated_rps: float
    saturated_p50_ms: float
    saturated_p99_ms: float
    server_cpu_ms_per_review: float
    rate: int
    paced_rps: float
    paced_p50_ms: float
    paced_p99_ms: float
    paced_max_ms: float
    hey_p50_ms: float
    hey_p99_ms: float
    errors: int
    round: int = 0
    pacer: str = "python"
    paced_p999_ms: float = 0.0
    paced_schedule_p99_ms: float = 0.0  # from each request's due time (its client's lag too)
    paced_schedule_p999_ms: float = 0.0


class Server:
    """One server process on a free loopback port, ready when its /readyz says so."""

    def __init__(self, name: str, argv: Sequence[str], *, log: Path, ca_file: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            self.port = self._wait_for_port()
            self.context = ssl.create_default_context(cafile=str(ca_file))
            deadline = time.monotonic() + 30
            while self.get("/readyz")[0] != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} never became ready; see {log}")
                time.sleep(0.1)
        except BaseException:
            self.process.kill()  # no server outlives a failed start
            self.process.wait(10)
            raise

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/validate"

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited; see {self.log}")
            found = LISTENING.search(self.log.read_bytes())
            if found:
                return int(found.group(1))
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not start listening; see {self.log}")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{self.port}{path}", context=self.context, timeout=5
            ) as response:
                return response.status, response.read()
        except OSError:
            return 0, b""

    def post(self, body: bytes) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, context=self.context, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the master and its workers (user + system)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            if pid == self.process.pid or int(fields[1]) == self.process.pid:
                total += int(fields[11]) + int(fields[12])
        return total / ticks

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


def wrk(url: str, *, script: Path, seconds: int, threads: int, connections: int) -> dict[str, Any]:
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    text = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    out = text.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    percentiles = {
        int(p): _ms(value) for p, value in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)$", out, re.M)
    }
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return {
        "rps": rps,
        "count": count,
        "p50": percentiles[50],
        "p99": percentiles[99],
        "errors": errors,
        "raw": out,
    }


def paced(url: str, *, body: Path, cafile: Path, seconds: int, rate: int) -> dict[str, Any]:
    """paced.py at an even rate (slow_clients.py's client; measure() takes --pacer's)."""
    return pacers.paced(url, client="python", body=body, cafile=cafile, seconds=seconds, rate=rate)


def hey(url: str, *, body: Path, seconds: int, rate: int) -> dict[str, Any]:
    argv = [
        "hey", "-z", f"{seconds}s", "-c", str(HEY_WORKERS), "-q", str(rate / HEY_WORKERS),
        "-m", "POST", "-T", "application/json", "-D", str(body), url,
    ]  # fmt: skip
    text = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    out = text.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)%+ in ([\d.]+) secs", out)}
    statuses = re.findall(r"^\s+\[(\d+)\]\s+(\d+) responses", out, re.M)
    errors = sum(int(count) for code, count in statuses if code != "200")
    if "Error distribution:" in out:
        failed = out.split("Error distribution:", 1)[1]
        errors += sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]", failed, re.M))
    return {
        "rps": rps,
        "p50": percentiles[50],
        "p99": percentiles[99],
        "errors": errors,
        "raw": out,
    }


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def warm_up(server: Server, args: argparse.Namespace, files: dict[str, Path]) -> None:
    wrk(server.url, script=files["lua"], seconds=2, threads=args.wrk_threads, connections=16)


def measure(
    server: Server, args: argparse.Namespace, files: dict[str, Path], *, warm: bool = True
) -> Result:
    """Saturation, then the even rate, then bursts; ``warm``: after 2 s of wrk, untimed."""
    if warm:
        warm_up(server, args, files)
    cpu_before = server.cpu_seconds()
    saturated = wrk(
        server.url,
        script=files["lua"],
        seconds=args.duration,
        threads=args.wrk_threads,
        connections=args.connections,
    )
    cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / max(saturated["count"], 1)
    even = pacers.paced(
        server.url,
        client=args.pacer,
        body=files["body"],
        cafile=files["ca"],
        seconds=args.rate_duration,
        rate=args.rate,
        pin=args.pin_client,
    )
    bursts = hey(server.url, body=files["body"], seconds=args.rate_duration, rate=args.rate)
    return Result(
        target=server.name,
        saturated_rps=saturated["rps"],
        saturated_p50_ms=saturated["p50"],
        saturated_p99_ms=saturated["p99"],
        server_cpu_ms_per_review=cpu_ms,
        rate=args.rate,
        paced_rps=even["rps"],
        paced_p50_ms=even["p50"],
        paced_p99_ms=even["p99"],
        paced_max_ms=even["max"],
        hey_p50_ms=bursts["p50"],
        hey_p99_ms=bursts["p99"],
        errors=saturated["errors"] + int(even["errors"]) + bursts["errors"],
        pacer=args.pacer,
        paced_p999_ms=even["p999"],
        paced_schedule_p99_ms=even["from_schedule"]["p99"],
        paced_schedule_p999_ms=even["from_schedule"]["p999"],
    )


def server_side_mean_ms(server: Server) -> float:
    _, text = server.get("/metrics")
    found = dict(
        re.findall(rb"^mamori_admission_duration_seconds_(sum|count) ([\d.e+-]+)$", text, re.M)
    )
    return float(found[b"sum"]) / max(float(found[b"count"]), 1) * 1000


def prepare_workspace(
    args: argparse.Namespace, *, prefix: str
) -> tuple[Path, dict[str, Path], list[str]]:
    """A scratch folder with a CA, a serving pair, the policy, the review body and wrk's script;
    return it, those files, and the `mamori webhook` flags every server under test shares."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    ca = LocalCA()
    (work / "ca.crt").write_bytes(ca.certificate_pem)
    ca.issue_server("bench").write(certificate=work / "tls.crt", key=work / "tls.key")
    (work / "policy.yaml").write_text(yaml.safe_dump(payload.POLICY))
    body = json.dumps(payload.review(), separators=(",", ":")).encode()
    if getattr(args, "review", None) is not None:
        body = args.review.read_bytes()
    files = request_files(work, "body", body, ca=work / "ca.crt")
    common = [
        "--listen", "127.0.0.1:0", "--tls-cert", str(work / "tls.crt"),
        "--tls-key", str(work / "tls.key"), "--workers", str(args.workers),
        "--threads", str(args.threads), "--log-format", "text",
    ]  # fmt: skip
    return work, files, common


def request_files(work: Path, name: str, body: bytes, *, ca: Path) -> dict[str, Path]:
    """``body`` as ``name``.json and the wrk script that posts it (``post.lua`` for "body")."""
    path = work / f"{name}.json"
    path.write_bytes(body)
    lua = work / ("post.lua" if name == "body" else f"post-{name}.lua")
    lua.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{path}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    return {"lua": lua, "body": path, "ca": ca}


def webhook_args(args: argparse.Namespace) -> list[str]:
    """--webhook-arg values, each split as a shell would ("--registry-ca-file FILE")."""
    return [word for value in args.webhook_arg for word in shlex.split(value)]


def check_allowed(server: Server, body: bytes, *, named: bool = False) -> None:
    """Refuse to time a review that is not the one meant: allowed, with no finding."""
    answer = server.post(body)["response"]
    if answer.get("allowed") is not True or set(answer) != {"uid", "allowed"}:
        prefix = f"{server.name}: " if named else ""
        raise SystemExit(f"{prefix}the payload must be allowed without findings, got {answer}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of saturation load")
    parser.add_argument("--rate", type=int, default=500, help="requests/s of the latency run")
    parser.add_argument("--rate-duration", type=int, default=10, help="seconds of each latency run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; the best of each is reported"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--flask-webhook",
        action="store_true",
        help="also measure the webhook with its direct route off (every review through Flask)",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="ClusterSecurityPolicy YAML the webhook loads (default: payload.py's production one)",
    )
    parser.add_argument(
        "--review",
        type=Path,
        metavar="FILE",
        help="AdmissionReview JSON to send (default: payload.py's Deployment); it must be "
        "allowed without findings",
    )
    parser.add_argument(
        "--webhook-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="more `mamori webhook` flags, split as a shell would; repeatable: "
        "--webhook-arg '--registry-ca-file FILE' or --webhook-arg=--registry-timeout=1",
    )
    parser.add_argument(
        "--signatures",
        action="store_true",
        help="instead: the webhook with and without spec.imageSignatures on the loopback "
        "registry of `make supplychain`, by digest and by tag (served_signatures.py)",
    )
    parser.add_argument(
        "--notation-images",
        type=int,
        default=1,
        help="with --signatures: Notation-signed images pushed (0: no Notation entry)",
    )
    parser.add_argument(
        "--pacer",
        choices=(*pacers.CLIENTS, "both"),
        help="the even-rate client: go (bench/admission/pacer, built by run.sh; the default "
        "when built) or python (paced.py); both: each in turn, with --paced-only",
    )
    parser.add_argument(
        "--paced-only",
        action="store_true",
        help="only the even rate (no saturation, no bursts): the floors and the webhook, "
        "alternating, with --pacer (paced_only.py)",
    )
    parser.add_argument(
        "--pin-client", metavar="CPUS", help="run the even-rate client under taskset -c CPUS"
    )
    parser.add_argument(
        "--pin-servers", metavar="CPUS", help="run the servers under taskset -c CPUS"
    )
    args = parser.parse_args()
    args.pacer = args.pacer or pacers.default_client()
    if args.pacer == "both" and not args.paced_only:
        parser.error("--pacer both needs --paced-only")
    for client in pacers.CLIENTS if args.pacer == "both" else (args.pacer,):
        pacers.check_client(client)
    if args.paced_only:
        if args.signatures:
            parser.error("--paced-only and --signatures are separate modes")
        from bench.admission import paced_only

        return paced_only.run(args)
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y wrk hey")
    if args.signatures:
        if args.flask_webhook or args.policy or args.review:
            parser.error("--signatures makes its own policies and reviews; no --flask-webhook")
        from bench.admission import served_signatures

        return served_signatures.run(args)
    work, files, common = prepare_workspace(args, prefix="mamori-bench-")
    body = files["body"].read_bytes()
    servers: list[Server] = []
    try:
        start_servers(args, work=work, common=common, into=servers)
        webhook = servers[-1]
        check_allowed(webhook, body)
        results = []
        for round_number in range(1, args.rounds + 1):  # alternate, so noise hits both alike
            for server in servers:
                result = measure(server, args, files)
                result.round = round_number
                results.append(result)
        mean_ms = server_side_mean_ms(webhook)
    finally:
        for server in servers:
            server.stop()
    report(results, mean_ms=mean_ms, body_bytes=len(body), args=args)
    if args.json:
        document = {
            "results": [asdict(r) for r in results],
            "server_side_mean_ms": mean_ms,
            "body_bytes": len(body),
            "settings": vars(args) | {"json": str(args.json)},
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.errors == 0 for r in results) else 1


def start_servers(
    args: argparse.Namespace, *, work: Path, common: list[str], into: list[Server]
) -> None:
    """The two no-op floors, the webhook through Flask with --flask-webhook, then the webhook,
    appended to ``into`` as each comes up (so the caller stops those that started)."""
    policy_file = str(args.policy.resolve()) if args.policy else str(work / "policy.yaml")
    python = sys.executable
    pin = ["taskset", "-c", args.pin_servers] if args.pin_servers else []
    webhook = ["webhook", *common, "--policy", policy_file, *webhook_args(args)]
    wanted = [
        ("no-op floor (Flask route)", [str(HERE / "noop_server.py"), *common], "noop"),
        ("no-op floor (direct route)", [str(HERE / "noop_server.py"), "--direct", *common],
         "noop-direct"),
    ]  # fmt: skip
    if args.flask_webhook:
        wanted.append(
            ("mamori webhook, all through Flask (before)",
             [str(HERE / "flask_webhook.py"), *webhook], "flask-webhook")
        )  # fmt: skip
    wanted.append(("mamori webhook (full rule set)", ["-m", "mamori.cli", *webhook], "webhook"))
    for name, argv, log in wanted:
        into.append(
            Server(name, [*pin, python, *argv], log=work / f"{log}.log", ca_file=work / "ca.crt")
        )


def client_label(args: Any) -> str:
    pinned = f", client on CPU {args.pin_client}" if getattr(args, "pin_client", None) else ""
    servers = f", servers on CPU {args.pin_servers}" if getattr(args, "pin_servers", None) else ""
    client = getattr(args, "pacer", "python")
    clients = "go and python clients in turn" if client == "both" else f"{client} client"
    return f"{clients}{pinned}{servers}"


def report(results: list[Result], *, mean_ms: float, body_bytes: int, args: Any) -> None:
    print(
        f"\nAdmissionReview of a Deployment ({body_bytes} bytes) over TLS with keep-alive; "
        f"server: {args.workers} workers x {args.threads} threads (gunicorn + front workers); "
        f"saturation: wrk -t{args.wrk_threads} -c{args.connections} {args.duration}s; "
        f"latency: {args.rate}/s for {args.rate_duration}s, evenly spaced ({client_label(args)}, "
        f"{pacers.CONNECTIONS} connections) and in bursts (hey -c{HEY_WORKERS} "
        f"-q{args.rate // HEY_WORKERS}); "
        f"{args.rounds} alternating rounds\n"
    )
    header = (
        "| server | round | saturated reviews/s | p50 / p99 ms (saturated) | server CPU ms/review "
        f"| {args.rate}/s even: p50 / p99 / p99.9 / max ms | p99 / p99.9 from schedule "
        f"| {args.rate}/s bursts: p50 / p99 ms | errors |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(row(r, str(r.round)))
    print("\nBest round of each measure (a shared 2-core machine: others' load only slows):\n")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target in dict.fromkeys(r.target for r in results):
        mine = [r for r in results if r.target == target]
        print(row(best_of(mine), "best"))
    print(f"\nserver-side mean per review (decode + rules + encode + metrics): {mean_ms:.3f} ms")
    print_ratios(results)


def best_of(mine: list[Result]) -> Result:
    """One target's best round of each measure: others' load on a shared machine only slows."""
    fastest = max(mine, key=lambda r: r.saturated_rps)
    calmest = min(mine, key=lambda r: r.paced_p99_ms)
    steadiest = min(mine, key=lambda r: r.hey_p99_ms)
    return replace(
        fastest,
        server_cpu_ms_per_review=min(r.server_cpu_ms_per_review for r in mine),
        paced_p50_ms=calmest.paced_p50_ms,
        paced_p99_ms=calmest.paced_p99_ms,
        paced_max_ms=calmest.paced_max_ms,
        paced_p999_ms=calmest.paced_p999_ms,
        paced_schedule_p99_ms=calmest.paced_schedule_p99_ms,
        paced_schedule_p999_ms=calmest.paced_schedule_p999_ms,
        hey_p50_ms=steadiest.hey_p50_ms,
        hey_p99_ms=steadiest.hey_p99_ms,
        errors=sum(r.errors for r in mine),
    )


def print_ratios(results: list[Result]) -> None:
    """Each webhook against each floor: best saturated rate to best, and server CPU per review."""
    targets = list(dict.fromkeys(r.target for r in results))
    floors, webhooks = targets[:2], targets[2:]
    for webhook_name in webhooks:
        webhook = [r for r in results if r.target == webhook_name]
        for floor_name in floors:
            floor = [r for r in results if r.target == floor_name]
            rate = max(r.saturated_rps for r in webhook) / max(r.saturated_rps for r in floor)
            cpu = min(r.server_cpu_ms_per_review for r in floor) / min(
                r.server_cpu_ms_per_review for r in webhook
            )
            rounds = " / ".join(
                f"{w.saturated_rps / f.saturated_rps:.2f}"
                for w, f in zip(webhook, floor, strict=True)
            )
            print(
                f"{webhook_name} / {floor_name}: {rate:.2f}x best to best "
                f"(rounds {rounds}); CPU per review {cpu:.2f}x"
            )


def row(r: Result, label: str) -> str:
    return (
        f"| {r.target} | {label} | {r.saturated_rps:,.0f} | {r.saturated_p50_ms:.2f} / "
        f"{r.saturated_p99_ms:.2f} | {r.server_cpu_ms_per_review:.2f} | "
        f"{r.paced_p50_ms:.2f} / {r.paced_p99_ms:.2f} / {r.paced_p999_ms:.2f} / "
        f"{r.paced_max_ms:.1f} | {r.paced_schedule_p99_ms:.2f} / {r.paced_schedule_p999_ms:.2f} | "
        f"{r.hey_p50_ms:.2f} / {r.hey_p99_ms:.2f} | {r.errors} |"
    )


if __name__ == "__main__":
    sys.exit(main())
