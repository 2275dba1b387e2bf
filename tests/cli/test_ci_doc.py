"""docs/ci.md shows what the commands print: each ``$ mamori check ...`` block is run again and
compared, so the page cannot drift from the code."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "ci.md"
# Where the page was made: %SRCROOT% is the working directory, which differs between checkouts.
SRCROOT = re.compile(r'"%SRCROOT%": \{"uri": "file://[^"]*"\}')


def shown_runs() -> list[tuple[str, str]]:
    blocks = re.findall(r"^```\n\$ (mamori check [^\n]*)\n(.*?)^```", PAGE.read_text(), re.M | re.S)
    return [(command, output) for command, output in blocks]


def test_the_page_shows_both_formats() -> None:
    commands = [command for command, _ in shown_runs()]
    assert any("--output sarif" in command for command in commands)
    assert any("--output junit" in command for command in commands)


@pytest.mark.parametrize(("command", "shown"), shown_runs())
def test_each_shown_output_is_what_the_command_prints(command: str, shown: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mamori.cli", *shlex.split(command)[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1  # the page says so for each
    placeholder = '"%SRCROOT%": {"uri": "file:///checkout/"}'
    assert SRCROOT.sub(placeholder, done.stdout) == SRCROOT.sub(placeholder, shown)
