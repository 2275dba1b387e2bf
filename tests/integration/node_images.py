"""The images a test node runs, written by hand: no registry to pull from, no Docker to build.

One layer (Debian's busybox-static and a few applet links) and one OCI image per name, each with
its own entrypoint, in one OCI archive that ``ctr images import`` reads. The same layer serves
as the sandbox ("pause") image: its entrypoint only sleeps.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "sleep", "cat", "id", "echo", "ls")
PAUSE_IMAGE = "localhost/mamori-pause:node-test"
BUSYBOX_IMAGE = "localhost/mamori-busybox:node-test"


def write_busybox_archive(path: Path, *, images: dict[str, Sequence[str]]) -> None:
    """An OCI archive with one image per name (value: its entrypoint) sharing a busybox layer."""
    layer = _busybox_layer()
    layer_digest = _digest(layer)
    blobs: dict[str, bytes] = {layer_digest: layer}
    manifests = []
    for name, entrypoint in images.items():
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": list(entrypoint), "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            }
        ).encode()
        blobs[_digest(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
                "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
            }
        ).encode()
        blobs[_digest(manifest)] = manifest
        descriptor = _descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
        descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
        descriptor["annotations"] = {
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name.rpartition(":")[2],
        }
        manifests.append(descriptor)
    index = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    with tarfile.open(path, "w") as archive:
        _add_file(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add_file(archive, "index.json", index)
        for digest, blob in blobs.items():
            _add_file(archive, f"blobs/sha256/{digest.removeprefix('sha256:')}", blob)


def _busybox_layer() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for directory in ("bin", "tmp", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            layer.addfile(info)
        _add_file(layer, "bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            layer.addfile(info)
    return buffer.getvalue()


def _add_file(archive: tarfile.TarFile, name: str, data: bytes, *, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}


def renamed_archive(source: Path, *, name: str, destination: Path) -> Path:
    """A copy of the one-image OCI archive ``source`` that containerd imports as ``name``.

    buildah names the image by a short ref ("mamori:dev"); the CRI would look it up as
    docker.io/library/mamori:dev. The copy carries containerd's own name annotation instead, so
    the kubelet finds exactly the reference a chart asks for. Blobs are copied unchanged.
    """
    with tarfile.open(source) as original, tarfile.open(destination, "w") as copy:
        for member in original.getmembers():
            data = original.extractfile(member) if member.isfile() else None
            if member.name.lstrip("./") == "index.json" and data is not None:
                index = json.loads(data.read())
                (descriptor,) = index["manifests"]
                descriptor["annotations"] = {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rpartition(":")[2],
                }
                _add_file(copy, member.name, json.dumps(index).encode())
            else:
                copy.addfile(member, data)
    return destination
