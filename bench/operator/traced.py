"""Run ``mamori operator`` with tracemalloc on, and dump where its memory is when asked.

The benchmark starts the operator through this module with ``--trace FILE`` (py-spy is not
available here, and tracemalloc must start before the first import to see everything). When
``FILE.request`` appears (a thread polls for it: a signal would wait for the busy event loop),
the process appends to FILE and removes the request: the traced heap now and at its peak, the
top allocation sites, the number of live asyncio tasks and threads, and the most numerous
objects. Tracing slows the operator down: converge times come from untraced runs. With
``MAMORI_BENCH_PROFILE=1`` it profiles every thread's CPU time with cProfile instead (no
tracemalloc) and appends the merged statistics (yappi and py-spy are not installed here);
with ``MAMORI_BENCH_PROFILE=gc`` it only times the cyclic collector (no tracing, no profiling:
the operator runs at full speed). Every dump starts with the collector's line.

Run: ``python -m bench.operator.traced FILE operator --kubeconfig …`` (arguments after FILE go
to ``mamori.cli``).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import os
import pstats
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

TOP = 25
GC_SECONDS = [0.0, 0.0, 0.0]  # CPU time in the cyclic collector, by generation
_gc_started = [0.0]


def time_collections(phase: str, info: dict[str, int]) -> None:
    """gc.callbacks hook: how much of the operator's time the cyclic collector takes."""
    if phase == "start":
        _gc_started[0] = time.thread_time()
    else:
        GC_SECONDS[info["generation"]] += time.thread_time() - _gc_started[0]


def allocator_lines() -> str:
    """pymalloc's own account (arenas mapped, blocks in use, free space in partly used pools):
    how much of the resident set is fragmentation rather than live objects."""
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    wanted = (
        "# arenas allocated current",
        "# bytes in allocated",
        "# bytes in available",
        "unused pools",
    )
    lines = [
        line for line in text.splitlines() if line.startswith(wanted) or "unused pools" in line
    ]
    return "pymalloc: " + "; ".join(" ".join(line.split()) for line in lines)


def gc_line() -> str:
    stats = gc.get_stats()
    return (
        "gc: "
        + ", ".join(
            f"gen{n} {s['collections']} collections {GC_SECONDS[n]:.2f}s"
            for n, s in enumerate(stats)
        )
        + f"; tracked objects {len(gc.get_objects())}, frozen {gc.get_freeze_count()}"
    )


def dump(out: Path) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    current, peak = tracemalloc.get_traced_memory()
    objects = gc.get_objects()
    tasks = sum(1 for o in objects if isinstance(o, asyncio.Task) and not o.done())
    kinds = Counter(type(o).__name__ for o in objects)
    lines = [
        f"traced now {current / 2**20:.1f} MiB, traced peak {peak / 2**20:.1f} MiB",
        f"live asyncio tasks {tasks}, threads {threading.active_count()}",
        gc_line(),
        "gc objects by type: "
        + ", ".join(f"{name} {count}" for name, count in kinds.most_common(12)),
        "top allocation sites (file):",
    ]
    for stat in snapshot.statistics("filename")[:TOP]:
        lines.append(f"  {stat.size / 2**20:8.1f} MiB {stat.count:9d}  {stat.traceback}")
    lines.append("top allocation sites (line):")
    for stat in snapshot.statistics("lineno")[:TOP]:
        lines.append(f"  {stat.size / 2**20:8.1f} MiB {stat.count:9d}  {stat.traceback}")
    with out.open("a") as stream:
        stream.write("\n".join(lines) + "\n\n")


def profile_every_thread() -> list[cProfile.Profile]:
    """One cProfile per thread (kopf's loop, its handler threads, the pod workers): each new
    thread's first call swaps this hook for its own profiler."""
    profiles: list[cProfile.Profile] = []

    def start(_frame: object, _event: str, _arg: object) -> None:
        profile = cProfile.Profile(time.thread_time)  # CPU, not time spent waiting
        profiles.append(profile)
        profile.enable()

    threading.setprofile(start)
    main_profile = cProfile.Profile(time.thread_time)
    profiles.append(main_profile)
    main_profile.enable()
    return profiles


def dump_profiles(profiles: list[cProfile.Profile], out: Path) -> None:
    stream = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=stream)
    for profile in profiles[1:]:
        stats.add(profile)
    stats.dump_stats(str(out) + ".pstats")  # the whole table, for pstats or snakeviz
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    with out.open("a") as target:
        target.write(gc_line() + "\n" + stream.getvalue())


def main() -> int:
    out = Path(sys.argv[1])
    mode = os.environ.get("MAMORI_BENCH_PROFILE", "")
    gc.callbacks.append(time_collections)
    profiles = profile_every_thread() if mode == "1" else []
    if not mode:
        tracemalloc.start(1)

    request = out.with_name(out.name + ".request")

    def answer_requests() -> None:
        while True:
            time.sleep(0.5)
            if request.exists():
                if profiles:
                    dump_profiles(profiles, out)
                elif mode == "gc":
                    with out.open("a") as stream:
                        stream.write(gc_line() + "\n" + allocator_lines() + "\n")
                else:
                    dump(out)
                request.unlink()

    threading.Thread(target=answer_requests, name="trace-dumper", daemon=True).start()
    if os.environ.get("MAMORI_BENCH_LAZY_CLIENT") == "1":  # bench --lazy-kubernetes-client
        from mamori_operator.memory import import_kubernetes_client_lazily

        import_kubernetes_client_lazily()
    from mamori.cli import main as cli_main

    return int(cli_main(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
