"""Fixtures for the tests on the built image: the OCI archive `make image` wrote, unpacked once.

These tests never build: a missing or stale archive fails with the command that makes it. They
run containers with runc, which needs root (CI runs as root).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.image.oci import IMAGE_DIR, OciImage, extract
from tests.image.runc import Bind, Container

ARCHIVE = Path(os.environ.get("MAMORI_IMAGE_ARCHIVE", IMAGE_DIR / "mamori.oci.tar"))
BASE_ARCHIVE = Path(os.environ.get("MAMORI_BASE_ARCHIVE", IMAGE_DIR / "standin.oci.tar"))


def require_archive(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make image`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> OciImage:
    return extract(require_archive(ARCHIVE), tmp_path_factory.mktemp("oci") / "layout")


@pytest.fixture(scope="session")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> OciImage:
    return extract(require_archive(BASE_ARCHIVE), tmp_path_factory.mktemp("oci") / "base")


@pytest.fixture(scope="session")
def rootfs(image: OciImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("rootfs")
    directory.chmod(0o755)  # runc resolves the rootfs path as root, the process runs as 65532
    yield image.unpack(directory / "rootfs")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def runc_ready() -> None:
    if os.geteuid() != 0:
        pytest.fail("the image tests run containers with runc: run them as root", pytrace=False)
    if shutil.which("runc") is None or shutil.which("umoci") is None:
        pytest.fail("runc and umoci are missing: apt-get install runc umoci", pytrace=False)


@pytest.fixture
def containers(
    rootfs: Path, image: OciImage, tmp_path: Path, runc_ready: None
) -> Callable[..., Container]:
    """Make containers of the image, their bundles under this test's tmp_path."""
    tmp_path.chmod(0o755)

    def make(
        *,
        args: Sequence[str] = (),
        entrypoint: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        binds: Sequence[Bind] = (),
        seccomp: bool = True,
    ) -> Container:
        return Container(
            rootfs=rootfs,
            image_config=image.runtime,
            workdir=tmp_path,
            args=args,
            entrypoint=entrypoint,
            env=env or {},
            binds=binds,
            seccomp=seccomp,
        )

    return make
