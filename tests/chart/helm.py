"""Run the real ``helm`` (built from Go modules by ``make helm``) on charts/mamori, for tests.

helm keeps caches and repository config under $HOME; each :class:`Helm` gets its own throwaway
directories instead, so tests never read or change the user's helm setup.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mamori"
SCENARIOS = tuple(sorted((CHART / "ci").glob("*.yaml")))
HELM_BIN_ENV = "MAMORI_HELM_BIN"
DEFAULT_HELM_BIN = ROOT / ".cache" / "helm" / "bin"
HELM_TIMEOUT = 180.0
Document = dict[str, Any]


class HelmFailed(AssertionError):
    """helm exited non-zero where the test expected success."""


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path
    kubeconfig: Path | None = None

    @classmethod
    def find(cls, home: Path, *, kubeconfig: Path | None = None) -> Helm:
        """The helm `make helm` built; a missing binary fails the test (never skips it)."""
        directory = Path(os.environ.get(HELM_BIN_ENV) or DEFAULT_HELM_BIN)
        binary = directory / "helm"
        if not binary.is_file():
            pytest.fail(f"{binary} is missing: run `make helm`", pytrace=False)
        return cls(binary, home, kubeconfig)

    def with_kubeconfig(self, kubeconfig: Path) -> Helm:
        return Helm(self.binary, self.home, kubeconfig)

    def __call__(self, *args: str, check: bool = True, timeout: float = HELM_TIMEOUT) -> HelmResult:
        argv = [str(self.binary), *args]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))},
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=environment, check=False
        )
        result = HelmResult(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise HelmFailed(
                f"helm {' '.join(args)} exited {done.returncode}\n"
                f"stderr:\n{done.stderr}\nstdout:\n{done.stdout}"
            )
        return result

    def template(
        self,
        *,
        release: str = "mamori",
        namespace: str = "mamori-system",
        values: Iterable[Path] = (),
        settings: Mapping[str, str] | None = None,
        extra: Sequence[str] = (),
        check: bool = True,
    ) -> HelmResult:
        args = ["template", release, str(CHART), f"--namespace={namespace}"]
        args += [f"--values={path}" for path in values]
        args += [f"--set={key}={value}" for key, value in (settings or {}).items()]
        return self(*args, *extra, check=check)

    def render(self, **kwargs: Any) -> list[Document]:
        """``helm template`` parsed: every object the chart would create (CRDs excepted)."""
        return documents(self.template(**kwargs).stdout)


def documents(text: str) -> list[Document]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(objects: Iterable[Document], kind: str) -> list[Document]:
    return [doc for doc in objects if doc.get("kind") == kind]


def one(objects: Iterable[Document], kind: str) -> Document:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container_env(deployment: Document) -> dict[str, Any]:
    """name → value (or valueFrom) of the first container's environment."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])
    }
