"""Time ``mamori check`` against kube-score over the same generated manifests, in one run.

For each size (default 1, 1,000 and 10,000 objects) the manifests are generated once (see
``generate.py``), then every command is run ``--runs`` times, interleaved (tool A, tool B, tool A,
…) so that a burst of load on a shared machine falls on both. Each run's wall time comes from
``time.perf_counter`` around the child and its peak RSS from ``os.wait4`` (the child's own
``ru_maxrss``, nothing else). Output goes to ``/dev/null``; both tools write their default text
report, so both pay for formatting findings.

With ``--startup N`` it times start-up instead: one manifest (the first generated object, one
file), each mamori command N times interleaved with the floor of its interpreter
(``python -c pass``: the interpreter and site, which no change to mamori can remove) and with
kube-score, and prints min and median milliseconds of wall time and of CPU time (user + system,
from ``os.wait4``: on a shared machine, what the run cost even when it had to wait for a core).

Plain Python (standard library only), from the repo root:
``python3 -m bench.check.bench --kube-score PATH``.
``run.sh`` builds kube-score from Go modules first and passes its path.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench.check.generate import generate

HERE = os.path.dirname(os.path.abspath(__file__))

# Exit statuses that mean "ran and judged" (0 clean, 1 findings); anything else is a failure.
JUDGED = (0, 1)
# Children may write bytecode caches (the unrecorded first run does), as an installed package
# has them: without, every run would compile the modules it imports, and start-up would
# measure the compiler.
CHILD_ENVIRONMENT = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass
class Case:
    """One command over one input: its runs' wall times and peak RSS figures."""

    tool: str
    count: int
    argv: list[str]
    stdin: str | None = None
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    """User + system CPU time of the child: what it cost, whatever else the machine runs."""

    def run_once(self) -> None:
        stdin = open(self.stdin, "rb") if self.stdin else subprocess.DEVNULL  # noqa: SIM115
        try:
            started = time.perf_counter()
            child = subprocess.Popen(
                self.argv,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=CHILD_ENVIRONMENT,
            )
            assert child.stderr is not None
            errors = child.stderr.read()
            _, status, usage = os.wait4(child.pid, 0)
            elapsed = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if self.stdin:
                stdin.close()  # type: ignore[union-attr]
        if child.returncode not in JUDGED:
            raise SystemExit(
                f"{self.tool} on {self.count} objects exited {child.returncode}:\n"
                f"{errors.decode(errors='replace')[-2000:]}"
            )
        self.seconds.append(elapsed)
        self.rss_kib.append(usage.ru_maxrss)  # kilobytes on Linux
        self.cpu_seconds.append(usage.ru_utime + usage.ru_stime)


def cases_for(
    count: int, root: str, *, mamori: dict[str, list[str]], kube_score: str | None
) -> list[Case]:
    directory = os.path.join(root, "dir")
    stream = os.path.join(root, "stream.yaml")
    files = sorted(glob.glob(os.path.join(directory, "*", "*.yaml")))
    cases = []
    for label, command in mamori.items():
        cases.append(Case(f"{label} check DIR", count, [*command, "check", directory]))
        cases.append(Case(f"{label} check - (stream)", count, [*command, "check", "-"], stream))
    if kube_score:
        # kube-score does not walk directories: it is given every file, as `kube-score score
        # dir/*/*.yaml` would.
        cases.append(Case("kube-score score FILES", count, [kube_score, "score", *files]))
        cases.append(Case("kube-score score - (stream)", count, [kube_score, "score", "-"], stream))
    return cases


def interpreter_of(command: list[str]) -> str:
    """The Python that runs ``command``: its first word, or the one a script's ``#!`` names."""
    with open(command[0], "rb") as program:
        first_line = program.readline()
    if not first_line.startswith(b"#!"):
        return command[0]
    words = first_line[2:].decode().split()
    return words[1] if os.path.basename(words[0]) == "env" else words[0]


def startup_cases(root: str, *, mamori: dict[str, list[str]], kube_score: str | None) -> list[Case]:
    """One manifest: the floor of each interpreter, each mamori command, then kube-score."""
    [manifest] = glob.glob(os.path.join(root, "dir", "*", "*.yaml"))
    interpreters = dict.fromkeys(interpreter_of(command) for command in mamori.values())
    cases = [Case(f"floor: {python} -c pass", 1, [python, "-c", "pass"]) for python in interpreters]
    for label, command in mamori.items():
        cases.append(Case(f"{label}: mamori check FILE", 1, [*command, "check", manifest]))
    if kube_score:
        cases.append(Case("kube-score score FILE", 1, [kube_score, "score", manifest]))
    return cases


def startup_row(case: Case) -> str:
    times, cpu = sorted(case.seconds), sorted(case.cpu_seconds)
    return (
        f"| {case.tool} | {times[0] * 1000:.1f} | {statistics.median(times) * 1000:.1f} | "
        f"{cpu[0] * 1000:.1f} | {statistics.median(cpu) * 1000:.1f} |"
    )


def run_startup(
    runs: int, work: str, *, mamori: dict[str, list[str]], kube_score: str | None
) -> None:
    root = os.path.join(os.path.abspath(work), "1")
    generate(1, root)
    cases = startup_cases(root, mamori=mamori, kube_score=kube_score)
    for case in cases:  # one unrecorded run each: page cache and .pyc files warm for all
        case.run_once()
        case.seconds.clear()
        case.cpu_seconds.clear()
    load_before = os.getloadavg()
    for _ in range(runs):
        for case in cases:
            case.run_once()
    load_after = os.getloadavg()
    print(
        f"\nStart-up, one manifest: {runs} runs each, interleaved; wall and CPU (user + system) "
        "milliseconds of the child. "
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}\n"
    )
    print("| command | wall min ms | wall median ms | CPU min ms | CPU median ms |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        print(startup_row(case))


def row(case: Case) -> str:
    times = sorted(case.seconds)
    return (
        f"| {case.tool} | {case.count:,} | {times[0]:.3f} | {statistics.median(times):.3f} | "
        f"{times[-1]:.3f} | {max(case.rss_kib) / 1024:.0f} MiB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,1000,10000", help="comma-separated sizes")
    parser.add_argument("--runs", type=int, default=5, help="runs of each command per size")
    parser.add_argument("--work", default=os.path.join(HERE, "..", "..", ".cache", "bench-check"))
    parser.add_argument(
        "--mamori",
        action="append",
        metavar="LABEL=COMMAND",
        help="a mamori command to time (split on spaces), repeatable; default: the project's "
        ".venv/bin/mamori, labelled mamori",
    )
    parser.add_argument("--kube-score", help="kube-score binary (omit to time mamori alone)")
    parser.add_argument(
        "--startup",
        type=int,
        metavar="RUNS",
        help="time start-up instead: one manifest, RUNS runs of each command and its floor",
    )
    args = parser.parse_args()

    default = os.path.normpath(os.path.join(HERE, "..", "..", ".venv", "bin", "mamori"))
    mamori = {
        label: command.split()
        for label, _, command in (text.partition("=") for text in args.mamori or [])
    } or {"mamori": [default]}
    if args.startup:
        run_startup(args.startup, args.work, mamori=mamori, kube_score=args.kube_score)
        return
    all_cases: list[Case] = []
    for count in (int(text) for text in args.counts.split(",")):
        root = os.path.join(os.path.abspath(args.work), str(count))
        generate(count, root)
        cases = cases_for(count, root, mamori=mamori, kube_score=args.kube_score)
        for case in cases:  # one unrecorded run each: page cache and binaries warm for all
            case.run_once()
            case.seconds.clear()
            case.rss_kib.clear()
        for _ in range(args.runs):
            for case in cases:
                case.run_once()
        for case in cases:
            print(row(case), file=sys.stderr, flush=True)
        all_cases.extend(cases)

    print(f"\n{args.runs} runs each, interleaved; wall seconds; peak RSS of the child\n")
    print("| command | objects | min s | median s | max s | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for case in all_cases:
        print(row(case))
    if args.kube_score:
        print("\n| objects | mamori | kube-score ÷ mamori, medians: stream | directory vs files |")
        print("|---:|---|---:|---:|")
        for count in sorted({case.count for case in all_cases}):
            medians = {
                case.tool: statistics.median(case.seconds)
                for case in all_cases
                if case.count == count
            }
            for label in mamori:
                stream = (
                    medians["kube-score score - (stream)"] / medians[f"{label} check - (stream)"]
                )
                files = medians["kube-score score FILES"] / medians[f"{label} check DIR"]
                print(f"| {count:,} | {label} | {stream:.2f} | {files:.2f} |")


if __name__ == "__main__":
    main()
