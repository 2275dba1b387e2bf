"""The admission benchmark's Go pacer, built from its sources and run against a real served
no-op floor on loopback: it sends what it was asked to, checks every answer, and reports both
latencies. Counts and orderings only: no figure here depends on how fast the machine is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.admission.bench import HERE, Server, prepare_workspace
from bench.admission.pacers import GO_SOURCES

RATE = 200
CONNECTIONS = 4


@pytest.fixture(scope="module")
def pacer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    assert go, "the Go toolchain is needed to build bench/admission/pacer (go on PATH)"
    binary = tmp_path_factory.mktemp("pacer") / "pacer"
    subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=GO_SOURCES,
        env=os.environ | {"GOTOOLCHAIN": "local"},
        check=True,
        timeout=240,
    )
    return binary


@pytest.fixture(scope="module")
def floor() -> Iterator[tuple[Server, dict[str, Path]]]:
    args = argparse.Namespace(workers=1, threads=2, review=None)
    work, files, common = prepare_workspace(args, prefix="mamori-test-pacer-")
    server = Server(
        "no-op floor (direct route)",
        [sys.executable, str(HERE / "noop_server.py"), "--direct", *common],
        log=work / "noop.log",
        ca_file=files["ca"],
    )
    try:
        yield server, files
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def run_pacer(
    pacer: Path, floor: tuple[Server, dict[str, Path]], *extra: str
) -> subprocess.CompletedProcess[str]:
    server, files = floor
    argv = [
        str(pacer), "-url", server.url, "-body", str(files["body"]), "-cafile", str(files["ca"]),
        "-rate", str(RATE), "-seconds", "1", "-connections", str(CONNECTIONS), *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_sends_every_scheduled_review_and_reports_both_latencies(
    pacer: Path, floor: tuple[Server, dict[str, Path]]
) -> None:
    done = run_pacer(pacer, floor)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert (report["sent"], report["requests"], report["errors"]) == (RATE, RATE, 0)
    assert (report["connections_opened"], report["reconnects"]) == (CONNECTIONS, 0)
    for key in ("p50", "p90", "p99", "p999", "max"):
        # each request's wait from its due time includes its wait from its send
        assert report["from_schedule"][key] >= report["from_send"][key] > 0
        assert report[key] == report["from_send"][key]
    assert report["client"] == "go"
    assert report["client_cpu_seconds"] > 0


def test_refuses_to_time_reviews_that_get_another_verdict(
    pacer: Path, floor: tuple[Server, dict[str, Path]]
) -> None:
    done = run_pacer(pacer, floor, "-expect", "denied")
    assert done.returncode == 2
    assert "unexpected verdict" in done.stderr
    assert done.stdout == ""
