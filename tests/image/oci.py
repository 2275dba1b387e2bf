"""The image as `make image` leaves it: an OCI archive, read without any container engine.

The archive is unpacked once per test session (index → manifest → config and layers); its root
filesystem is made with umoci, which applies the layers' whiteouts as a runtime would.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / ".cache" / "image"


@dataclass(frozen=True)
class Layer:
    """One filesystem layer: its sizes and the build step that made it."""

    digest: str
    compressed: int
    uncompressed: int
    steps: tuple[str, ...]  # the build steps since the previous layer (buildah folds a stage's
    #                         steps into one layer unless it builds with --layers)


@dataclass(frozen=True)
class OciImage:
    """An OCI image layout extracted from an archive."""

    layout: Path

    @cached_property
    def index(self) -> dict[str, Any]:
        return self._json(self.layout / "index.json")

    @cached_property
    def ref(self) -> str:
        (manifest,) = self.index["manifests"]
        return str(manifest["annotations"]["org.opencontainers.image.ref.name"])

    @cached_property
    def manifest(self) -> dict[str, Any]:
        (manifest,) = self.index["manifests"]
        return self._json(self.blob(manifest["digest"]))

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._json(self.blob(self.manifest["config"]["digest"]))

    @property
    def runtime(self) -> dict[str, Any]:
        """The `config` section: User, Entrypoint, Cmd, Env, WorkingDir, Labels."""
        return dict(self.config["config"])

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config["rootfs"]["diff_ids"])

    def blob(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.layout / "blobs" / algorithm / hexdigest

    @cached_property
    def layers(self) -> list[Layer]:
        groups: list[tuple[str, ...]] = []
        pending: list[str] = []
        for entry in self.config["history"]:
            pending.append(" ".join(str(entry.get("created_by", "")).split()))
            if not entry.get("empty_layer"):
                groups.append(tuple(pending))
                pending = []
        layers = []
        for descriptor, steps in zip(self.manifest["layers"], groups, strict=True):
            with self.open_layer(descriptor) as stream:
                uncompressed = sum(iter(lambda: len(stream.read(1 << 20)), 0))
            layers.append(
                Layer(
                    digest=descriptor["digest"],
                    compressed=int(descriptor["size"]),
                    uncompressed=uncompressed,
                    steps=steps,
                )
            )
        return layers

    def open_layer(self, descriptor: dict[str, Any]) -> Any:
        path = self.blob(descriptor["digest"])
        if descriptor["mediaType"].endswith("gzip"):
            return gzip.open(path, "rb")
        return path.open("rb")

    def layer_members(self) -> Iterator[tuple[int, str]]:
        """(layer index, path) of every entry of every layer, whiteouts included."""
        for number, descriptor in enumerate(self.manifest["layers"]):
            with self.open_layer(descriptor) as stream, tarfile.open(fileobj=stream) as tar:
                for member in tar:
                    yield number, member.name.removeprefix("./")

    def unpack(self, rootfs: Path) -> Path:
        """The root filesystem a runtime would see (umoci applies the whiteouts)."""
        subprocess.run(
            ["umoci", "raw", "unpack", "--image", f"{self.layout}:{self.ref}", str(rootfs)],
            check=True,
            capture_output=True,
            timeout=600,
        )
        return rootfs

    @staticmethod
    def _json(path: Path) -> dict[str, Any]:
        return dict(json.loads(path.read_text(encoding="utf-8")))


def extract(archive: Path, directory: Path) -> OciImage:
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")
    return OciImage(directory)
