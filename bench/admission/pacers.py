"""The clients that send reviews at an even rate: the Go pacer (``pacer/``), or paced.py.

Both are open-loop, on 16 keep-alive TLS connections, and print the same JSON: latencies from
each request's send (``p50`` ... ``max``, and ``from_send``) and from its due time
(``from_schedule``), errors, the achieved rate and their own CPU time. The Go one is the
default when run.sh has built it from the current sources: the Python one shares the two cores,
a GIL, an event loop and a garbage collector with its own timer, and its lateness shows in
every figure it takes. ``--pin-client`` runs either under ``taskset``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GO_SOURCES = HERE / "pacer"
GO_BINARY = ROOT / ".cache" / "bench-admission" / "pacer"
CLIENTS = ("go", "python")
CONNECTIONS = 16


def go_pacer_built() -> bool:
    """True when run.sh's build of the Go pacer is newer than every one of its sources."""
    if not GO_BINARY.is_file():
        return False
    built = GO_BINARY.stat().st_mtime
    return all(source.stat().st_mtime <= built for source in GO_SOURCES.iterdir())


def default_client() -> str:
    return "go" if go_pacer_built() else "python"


def check_client(client: str) -> None:
    """Refuse a Go run with a missing or stale binary rather than time an old client."""
    if client == "go" and not go_pacer_built():
        raise SystemExit(
            f"the Go pacer is missing or older than {GO_SOURCES}: build it with "
            "bash bench/admission/run.sh (needs go), or pass --pacer python"
        )


def paced(
    url: str,
    *,
    client: str,
    body: Path,
    cafile: Path,
    seconds: int,
    rate: int,
    pin: str | None = None,
) -> dict[str, Any]:
    """Run one client for ``seconds`` at ``rate`` requests/s against ``url``; its JSON report."""
    if client == "go":
        argv = [
            str(GO_BINARY), "-url", url, "-body", str(body), "-cafile", str(cafile),
            "-rate", str(rate), "-seconds", str(seconds), "-connections", str(CONNECTIONS),
        ]  # fmt: skip
    else:
        argv = [
            sys.executable, "-m", "bench.admission.paced", url, "--body", str(body),
            "--cafile", str(cafile), "--rate", str(rate), "--seconds", str(seconds),
            "--connections", str(CONNECTIONS),
        ]  # fmt: skip
    if pin:
        argv = ["taskset", "-c", pin, *argv]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 60, cwd=ROOT
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]
