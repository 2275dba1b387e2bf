"""`make demo` is the first command of the README: it must keep working, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_demo_tells_the_whole_story() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mamori_dev.demo", "--no-wait"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Server Version: v1.36.3" in output
    assert 'admission webhook "validate.mamori.io" denied the request' in output
    assert "[run-as-non-root]" in output and "[trusted-registry]" in output
    assert "Warning: production: [run-as-user]" in output
    assert "deployment.apps/web created" in output
    assert "mamori-production" in output  # a managed NetworkPolicy
    assert "vulnerable" in output  # the pod's scan status
    assert "ENFORCEMENT   NAMESPACES   VIOLATIONS   NETWORKPOLICIES   READY" in output
