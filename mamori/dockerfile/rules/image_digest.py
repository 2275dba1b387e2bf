"""dockerfile-image-digest: a Dockerfile's base images are pinned by sha256 digest.

Spec: when the policy sets ``requireImageDigest``, every image the build pulls (``FROM`` after
build-argument substitution, ``COPY --from=<image>``) carries ``@sha256:<64 hex>``; a digest in
an ``ARG`` default counts (``ARG BASE=python:3.12-slim@sha256:…`` then ``FROM ${BASE}``).
A tag can be moved to other content after review; a digest cannot.
"""

from __future__ import annotations

from mamori.dockerfile.rules._images import pulled_images
from mamori.dockerfile.rules.registry import BuildContext, DockerfileFinding, rule
from mamori.dockerfile.stages import Dockerfile
from mamori.rules.image_digest import HOW_TO_PIN, REQUIRED_ALGORITHM
from mamori.rules.registry import RuleSettings


def requires_digest(settings: RuleSettings) -> bool:
    """On only when the policy sets requireImageDigest."""
    return settings.require_image_digest


@rule(
    rule_id="dockerfile-image-digest",
    summary="base images are pinned by @sha256: digest",
    applies=requires_digest,
)
def check_image_digest(
    dockerfile: Dockerfile, settings: RuleSettings, context: BuildContext
) -> list[DockerfileFinding]:
    findings: list[DockerfileFinding] = []
    for image in pulled_images(dockerfile):
        if image.reference is None:
            findings.append(image.undecided())
            continue
        algorithm = image.reference.digest_algorithm
        if algorithm == REQUIRED_ALGORITHM:
            continue
        if algorithm is None:
            problem = "is not pinned by digest"
        else:
            problem = f"is pinned by a {algorithm} digest, but the policy requires sha256"
        pinned = image.use.resolved.partition("@")[0]
        findings.append(
            image.finding(
                f"{image.use.field} {image.shown} {problem}; pin it as "
                f"{pinned}@sha256:<digest> ({HOW_TO_PIN})"
            )
        )
    return findings
