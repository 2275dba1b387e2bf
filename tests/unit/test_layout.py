"""The tree's promises: run from the repository root with no environment tricks, the standard
library is never shadowed, ``python -m mamori`` works, and the core package loads neither the
deployables nor their frameworks (docs/architecture.md draws the arrows)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
found = pkgutil.walk_packages(package.__path__, sys.argv[1] + ".")
names = [m.name for m in found if not m.name.endswith(".__main__")]
for name in names:
    importlib.import_module(name)
loaded = sorted(name for name in sys.argv[2:] if name in sys.modules)
print(json.dumps({"modules": len(names), "loaded": loaded}))
"""
# package → what importing every one of its modules must never load (docs/architecture.md)
NEVER = {
    "mamori": ("mamori_webhook", "mamori_operator", "mamori_dev", "flask", "kopf", "kubernetes"),
    "mamori_webhook": ("mamori_operator", "mamori_dev", "kopf"),
    "mamori_operator": ("mamori_webhook", "mamori_dev", "flask", "gunicorn"),
}


def _from_the_root(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_standard_librarys_operator_wins_from_the_repository_root() -> None:
    probe = "import json, operator, sys; print(json.dumps([operator.__file__, sys.path[0]]))"
    done = _from_the_root("-c", probe)
    assert done.returncode == 0, done.stderr
    module_file, first_path_entry = json.loads(done.stdout)
    assert first_path_entry == ""  # the working directory (the root) is on sys.path first
    assert not Path(module_file).resolve().is_relative_to(REPOSITORY)


def test_python_dash_m_mamori_runs_from_the_repository_root() -> None:
    done = _from_the_root("-m", "mamori", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mamori ")


@pytest.mark.parametrize("package", sorted(NEVER))
def test_each_package_imports_only_along_the_drawn_arrows(package: str) -> None:
    done = _from_the_root("-c", PROBE, package, *NEVER[package])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["modules"] > 10
    assert result["loaded"] == []
