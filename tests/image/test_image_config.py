"""The built image's configuration and contents: what `docker inspect` and `docker run ls` would
show, read from the OCI archive and its unpacked root filesystem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.image.oci import OciImage

pytestmark = pytest.mark.image

SITE_PACKAGES = "opt/mamori/lib/python3.11/site-packages"
INSTALLERS = ("pip", "setuptools", "wheel", "_distutils_hack", "pkg_resources")
# Paths no layer may contain, even one a later layer deletes: build secrets, the build stage's
# sources, and the repository's own folders.
FORBIDDEN_IN_LAYERS = re.compile(
    r"(^|/)(\.git|\.cache|\.venv|\.pytest_cache|\.mypy_cache)(/|$)"
    r"|^etc/pip\.conf$|^run/secrets/.|^root/\.(cache|config/pip)/|^src(/|$)"
    r"|^opt/mamori/.*/(tests|conftest\.py)(/|$)"
)
PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64}")


def test_runs_as_a_numeric_non_root_user(image: OciImage) -> None:
    uid, _, gid = image.runtime["User"].partition(":")
    assert (uid, gid) == ("65532", "65532")


def test_the_entrypoint_is_mamori_with_help_by_default(image: OciImage) -> None:
    assert image.runtime["Entrypoint"] == ["mamori"]
    assert image.runtime["Cmd"] == ["--help"]
    assert image.runtime["WorkingDir"] == "/tmp"
    env = dict(item.split("=", 1) for item in image.runtime["Env"])
    assert env["PATH"].split(":")[0] == "/opt/mamori/bin"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_the_labels_name_describe_and_license_it(image: OciImage) -> None:
    labels = image.runtime["Labels"]
    assert labels["org.opencontainers.image.title"] == "mamori"
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_no_installer_is_importable_anywhere(rootfs: Path) -> None:
    """pip, setuptools and wheel are gone from the base and were never in the virtualenv."""
    found = [
        str(path.relative_to(rootfs))
        for pattern in ("usr/lib/python3*", "usr/local/lib/python3*", "opt/mamori/lib/python3*")
        for library in rootfs.glob(pattern)
        for folder in ("site-packages", "dist-packages")
        for name in INSTALLERS
        for path in (library / folder).glob(f"{name}*")
    ]
    found += [str(p.relative_to(rootfs)) for p in rootfs.glob("usr/local/bin/pip*")]
    found += [str(p.relative_to(rootfs)) for p in rootfs.glob("opt/mamori/bin/pip*")]
    assert found == []


def test_no_layer_carries_secrets_sources_or_repository_folders(image: OciImage) -> None:
    leaked = [f"layer {n}: {path}" for n, path in image.layer_members()
              if FORBIDDEN_IN_LAYERS.search(path)]  # fmt: skip
    assert leaked == []


def test_no_private_key_or_kubeconfig_in_the_filesystem(rootfs: Path) -> None:
    suspects = []
    for top in ("opt", "etc", "root", "home", "tmp", "run", "var", "usr/local"):
        for path in (rootfs / top).rglob("*"):
            if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
                continue
            content = path.read_bytes()
            kubeconfig = path.name in ("kubeconfig", "config") and b"clusters:" in content
            if kubeconfig or PRIVATE_KEY.search(content):
                suspects.append(str(path.relative_to(rootfs)))
    assert suspects == []


def test_the_build_left_no_caches_behind(rootfs: Path) -> None:
    caches = [str(p.relative_to(rootfs)) for p in (rootfs / "root").rglob(".cache")]
    caches += [str(p.relative_to(rootfs)) for p in (rootfs / "tmp").iterdir()]
    assert caches == []


def test_unused_library_parts_were_cut(rootfs: Path) -> None:
    """What tools/image/slim_venv.py removes stays removed (sizes: test_image_size.py)."""
    site = rootfs / SITE_PACKAGES
    models = sorted(path.name for path in (site / "botocore/data").iterdir() if path.is_dir())
    assert models == ["ecr", "inspector2", "sso", "sso-oidc", "sts"]
    assert not (site / "kubernetes/aio").exists()
    assert not list(site.glob("*/tests")) and not list(site.glob("*/test"))
