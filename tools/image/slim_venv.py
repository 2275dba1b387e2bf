"""Cut from the image's virtualenv what mamori never loads at run time, and say how much.

Measured on the first image (docs/benchmarks.md): of what our layers add, botocore's service
models for ~450 AWS services and kubernetes' asyncio client (`kubernetes.aio`, a second copy of
the generated client that neither kopf nor mamori imports) were most of it. Run in the build
stage, after the install, so the runtime stage copies the virtualenv without them. The image
tests import everything mamori imports, and build the AWS clients it uses, on the result.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def tree_size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(item.lstat().st_size for item in path.rglob("*") if not item.is_dir())


def unused_botocore_models(site: Path, keep: set[str]) -> list[Path]:
    """Service model folders of botocore/data for services not in ``keep``."""
    data = site / "botocore" / "data"
    missing = keep - {path.name for path in data.iterdir()}
    if missing:
        raise SystemExit(f"botocore has no model for {sorted(missing)}: check --aws-services")
    return sorted(path for path in data.iterdir() if path.is_dir() and path.name not in keep)


def bundled_test_suites(site: Path) -> list[Path]:
    """`tests`/`test` packages that libraries ship inside themselves (one level down)."""
    found = [path for name in ("tests", "test") for path in site.glob(f"*/{name}")]
    return sorted(path for path in found if path.is_dir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("site_packages", type=Path)
    parser.add_argument(
        "--aws-services",
        required=True,
        help="comma-separated botocore service models to keep (the clients mamori creates, "
        "and those botocore's credential providers use)",
    )
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="PACKAGE_PATH",
        help="a subpackage nothing imports, relative to site-packages (repeatable)",
    )
    args = parser.parse_args()
    site: Path = args.site_packages
    keep = {name.strip() for name in args.aws_services.split(",") if name.strip()}
    unused = [site / path for path in args.drop]
    for path in unused:
        if not path.is_dir():
            raise SystemExit(f"{path} is not there: check --drop")
    cuts = {
        "botocore models": unused_botocore_models(site, keep),
        "unused subpackages": unused,
        "bundled tests": bundled_test_suites(site),
    }
    before = tree_size(site)
    for what, paths in cuts.items():
        size = sum(tree_size(path) for path in paths)
        for path in paths:
            shutil.rmtree(path)
        print(f"slim_venv: {what}: {len(paths)} removed, {size / 1e6:.1f} MB", file=sys.stderr)
    after = tree_size(site)
    print(
        f"slim_venv: site-packages {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB", file=sys.stderr
    )


if __name__ == "__main__":
    main()
