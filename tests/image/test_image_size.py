"""How big the image is and what makes it so: printed by every test run (and kept in
.cache/image/size-report.txt), with a budget for what our layers add on top of the base."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from tests.image.oci import IMAGE_DIR, OciImage

pytestmark = pytest.mark.image

SITE_PACKAGES = "opt/mamori/lib/python3.11/site-packages"
MB = 1e6
# Measured 2026-11-30 (docs/benchmarks.md): our layers added 165 MB before tools/image/slim_venv.py
# and 103 MB after; 117 MB once uvloop joined the runtime dependencies.
OUR_LAYERS_BUDGET_MB = 125


def distribution_sizes(site: Path) -> Counter[str]:
    """Bytes on disk per installed distribution (the files its RECORD lists that exist)."""
    sizes: Counter[str] = Counter()
    for record in site.glob("*.dist-info/RECORD"):
        name = record.parent.name.split("-")[0]
        with record.open(newline="", encoding="utf-8") as file:
            for row in csv.reader(file):
                path = (site / row[0]).resolve() if row else site
                if path.is_file() and site in path.parents:
                    sizes[name] += path.stat().st_size
    return sizes


def our_layers(image: OciImage, base: OciImage) -> list[int]:
    """Indexes of the layers our Dockerfile added on top of the base image."""
    count = len(base.diff_ids)
    assert image.diff_ids[:count] == base.diff_ids, "the image is not built on this base"
    return list(range(count, len(image.diff_ids)))


def describe(steps: tuple[str, ...]) -> str:
    """`RUN, COPY` for the Dockerfile instructions folded into one layer."""
    keywords = []
    for step in steps:
        words = step.removeprefix("/bin/sh -c ").removeprefix("#(nop) ").split()
        keywords.append(words[0] if words and words[0].isupper() else "RUN")
    return f"{len(steps)} steps: " + ", ".join(keywords)


def report(*, image: OciImage, base: OciImage, rootfs: Path) -> tuple[str, int]:
    ours = our_layers(image, base)
    layers = image.layers
    added = sum(layers[i].uncompressed for i in ours)
    lines = [
        f"image {image.ref}: {sum(x.uncompressed for x in layers) / MB:.1f} MB on disk, "
        f"{sum(x.compressed for x in layers) / MB:.1f} MB compressed "
        f"({len(layers)} layers; our layers add {added / MB:.1f} MB)",
        f"{'layer':>5} {'on disk':>10} {'compressed':>11}  step",
    ]
    for number, layer in enumerate(layers):
        step = "base image" if number not in ours else describe(layer.steps)
        lines.append(
            f"{number:>5} {layer.uncompressed / MB:>7.1f} MB {layer.compressed / MB:>8.1f} MB  "
            f"{step}"
        )
    site = rootfs / SITE_PACKAGES
    sizes = distribution_sizes(site)
    lines.append("largest Python packages in the virtualenv:")
    for name, size in sizes.most_common(3):
        lines.append(f"  {name:<20} {size / MB:6.1f} MB")
    return "\n".join(lines), added


def test_print_the_image_size_and_keep_our_layers_within_budget(
    image: OciImage, base_image: OciImage, rootfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, added = report(image=image, base=base_image, rootfs=rootfs)
    IMAGE_DIR.mkdir(parents=True, exist_ok=True)
    (IMAGE_DIR / "size-report.txt").write_text(text + "\n", encoding="utf-8")
    with capsys.disabled():
        print("\n" + text)
    assert added / MB <= OUR_LAYERS_BUDGET_MB, text


def test_the_package_sizes_add_up(rootfs: Path) -> None:
    """The per-package figures count the virtualenv, not a sliver of it."""
    site = rootfs / SITE_PACKAGES
    counted = sum(distribution_sizes(site).values())
    on_disk = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())
    assert 0.9 * on_disk <= counted <= on_disk
