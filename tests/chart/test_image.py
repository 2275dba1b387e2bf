"""The image recipe: hadolint-clean, base pinned by digest, locked and hashed dependencies that
are the ones tested here, a numeric non-root user, and a build context without secrets."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
LOCKS = ROOT / "requirements"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+) \\$")
HASH = re.compile(r"^    --hash=sha256:[0-9a-f]{64}( \\)?$")


def lock_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_runtime", ROOT / "tools/lock_runtime.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_lock(path: Path) -> dict[str, str]:
    """name → version; every pin must be followed by at least one sha256 hash line."""
    pins: dict[str, str] = {}
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    current = None
    for line in lines:
        if match := PIN.match(line):
            current = match["name"]
            pins[current] = match["version"]
        else:
            assert HASH.match(line) and current is not None, f"{path.name}: {line!r}"
    return pins


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_hadolint_finds_nothing() -> None:
    if not HADOLINT.is_file():
        pytest.fail(f"{HADOLINT} is missing: `pip install -e '.[dev]'`", pytrace=False)
    done = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_image_is_pinned_by_digest_and_shared_by_both_stages() -> None:
    steps = instructions(DOCKERFILE.read_text())
    (base,) = [rest for keyword, rest in steps if keyword == "ARG" and rest.startswith("PYTHON_")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim@sha256:[0-9a-f]{64}", base), base
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_the_runtime_stage_runs_mamori_as_a_numeric_non_root_user() -> None:
    steps = instructions(DOCKERFILE.read_text())
    final = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM") :]
    (user,) = [rest for keyword, rest in final if keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert ("ENTRYPOINT", '["mamori"]') in final
    assert not [rest for keyword, rest in final if keyword in ("ADD",)]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "install" not in runs.replace("uninstall", "")  # nothing installed in the last stage


def test_dependencies_come_only_from_hashed_locks() -> None:
    runs = [rest for keyword, rest in instructions(DOCKERFILE.read_text()) if keyword == "RUN"]
    installs = [part for run in runs for part in run.split("&&") if " install " in part]
    assert installs
    for install in installs:
        assert "--require-hashes" in install or "--no-index" in install, install
        assert "--no-deps" in install, install


def test_the_runtime_lock_is_what_the_tests_ran_against() -> None:
    """The lock pins exactly the runtime closure installed in this virtualenv (no drift)."""
    locked = read_lock(LOCKS / "runtime.lock")
    assert locked == lock_tool().runtime_closure(), "run .venv/bin/python tools/lock_runtime.py"
    assert "kubernetes" in locked and not locked["kubernetes"].startswith("37.")


def test_the_build_lock_pins_the_build_backend() -> None:
    locked = read_lock(LOCKS / "build.lock")
    assert locked == lock_tool().BUILD_PINS


def test_the_build_context_leaves_out_everything_but_the_sources() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"  # deny by default: no kubeconfig, .venv, .cache or .git can slip in
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {
        "requirements",
        "pyproject.toml",
        "README.md",
        "mamori",
        "webhook",
        "operator",
        "tools/image/slim_venv.py",
    }
    copied = [
        rest.split()[0].rstrip("/")
        for keyword, rest in instructions(DOCKERFILE.read_text())
        if keyword == "COPY" and not rest.startswith("--from")
    ]
    assert set(copied) <= allowed | {"pyproject.toml", "README.md"}


def test_pip_configuration_reaches_the_build_only_as_optional_secrets() -> None:
    """The host's pip settings (index, CA bundle) are build secrets, mounted for the downloading
    step only: never an ARG or ENV, which the image's history would keep, and optional, so a plain
    `docker build .` needs none."""
    steps = instructions(DOCKERFILE.read_text())
    for keyword, rest in steps:
        if keyword in ("ARG", "ENV"):
            names = re.findall(r"(?:^|\s)([A-Z_]+)=", rest) or [rest.split("=")[0]]
            assert not [name for name in names if name.startswith("PIP_INDEX")], rest
            assert not re.search(r"PIP_(CERT|CLIENT_CERT|EXTRA_INDEX_URL|TRUSTED_HOST)", rest)
    runs = [rest for keyword, rest in steps if keyword == "RUN"]
    (downloading,) = [run for run in runs if "--require-hashes" in run]
    mounts = re.findall(r"--mount=(\S+)", downloading)
    assert mounts == [
        "type=secret,id=pipconf,target=/etc/pip.conf",
        "type=secret,id=pipcert,target=/run/secrets/pipcert",
    ]
    assert all("--mount" not in run for run in runs if run is not downloading)
