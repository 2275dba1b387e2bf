"""The signature benchmark's registry content: images pushed with crane, signed with the real
cosign (legacy ``.sig`` tag or bundle, alternating) and the real notation, one repository each.

Signing is the slow part of a run (one CLI process per image, ~0.5 s each on a quiet machine),
so it happens once, before anything is timed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.registry_support import NotationSigner, TestRegistry

PASSWORD = "bench cosign key password"
COSIGNED = "cosigned"  # repositories cosigned/app-NNN
NOTARISED = "notarised"  # repositories notarised/app-NNN


# --- the registry, its images and signatures --------------------------------------------------


@dataclass
class Signed:
    """Pushed and signed images: one repository each, ``form`` how it was signed."""

    registry: TestRegistry
    cosign_key: Path
    notation: NotationSigner | None
    images: list[SignedImage] = field(default_factory=list)

    def of(self, form: str) -> list[SignedImage]:
        return [image for image in self.images if image.form == form]


@dataclass(frozen=True)
class SignedImage:
    repository: str
    tag: str
    digest: str
    form: str  # legacy | bundle | notation
    address: str

    @property
    def tagged(self) -> str:
        return f"{self.address}/{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        return f"{self.address}/{self.repository}@{self.digest}"


def cosign_sign(registry: TestRegistry, key: Path, images: Sequence[str], *, bundle: bool) -> None:
    """Sign ``images`` (by digest) with the real cosign, one process per image."""
    for image in images:
        if bundle:
            config = key.parent / "signing-config.json"
            if not config.exists():
                registry.cosign("signing-config", "create", "--out", str(config), cwd=key.parent)
            args = ["sign", "--key", "cosign.key", "--signing-config", str(config), "--yes"]
        else:
            args = [
                "sign", "--key", "cosign.key", "--new-bundle-format=false",
                "--use-signing-config=false", "--tlog-upload=false", "--yes",
            ]  # fmt: skip
        registry.cosign(*args, image, cwd=key.parent, password=PASSWORD)


def push_and_sign(
    registry: TestRegistry, work: Path, *, count: int, notation_count: int, run: str
) -> Signed:
    key = registry.cosign_key_pair(work / "cosign", PASSWORD)
    signer = None
    if notation_count:
        signer = registry.notation_test_signer(work / "notation", "mamori-bench")
    signed = Signed(registry, key, signer)
    for index in range(count):
        form = "legacy" if index % 2 == 0 else "bundle"
        repository = f"{COSIGNED}/app-{index:03d}"
        digest = registry.push_image(repository, "v1", f"{repository} {run}")
        signed.images.append(SignedImage(repository, "v1", digest, form, registry.address))
    for form in ("legacy", "bundle"):
        pinned = [image.pinned for image in signed.of(form)]
        cosign_sign(registry, key, pinned, bundle=form == "bundle")
    for index in range(notation_count):
        repository = f"{NOTARISED}/app-{index:03d}"
        digest = registry.push_image(repository, "v1", f"{repository} {run}")
        image = SignedImage(repository, "v1", digest, "notation", registry.address)
        assert signer is not None
        registry.notation_sign(signer, image.pinned)
        signed.images.append(image)
    return signed


def credentials_file(
    registry: TestRegistry, directory: Path, *, also: Sequence[str] = (), name: str = ""
) -> Path:
    """What ``kubectl create secret docker-registry`` puts in ``.dockerconfigjson``, for the
    registry and for ``also`` (other addresses that lead to it)."""
    pair = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    config = {"auths": {address: {"auth": pair} for address in (registry.address, *also)}}
    path = directory / (name or "dockerconfig.json")
    path.write_text(json.dumps(config))
    return path
