"""image-digest: images are pinned by sha256 digest.

Spec: when ``spec.requireImageDigest`` is true, every init, regular and ephemeral container
image must carry ``@sha256:<64 hex>``. ``name:tag@sha256:…`` passes: the runtime pulls the
digest and the tag is only a label. Images that do not parse are left to ``image-reference``.

A tag can be moved to other content after review; a digest cannot, so the image that was
checked (and scanned) is the one that runs.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules.registry import Level, RuleSettings, rule

REQUIRED_ALGORITHM = "sha256"
HOW_TO_PIN = "find the digest with `crane digest IMAGE` or `docker buildx imagetools inspect IMAGE`"


def requires_digest(settings: RuleSettings) -> bool:
    """The rule is on only when the policy sets requireImageDigest."""
    return settings.require_image_digest


@rule(
    rule_id="image-digest",
    level=Level.IMAGE,
    summary="images are pinned by @sha256: digest",
    applies=requires_digest,
)
def check_image_digest(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    if not settings.require_image_digest:
        return findings
    for container, image, reference in pod.parsed_images():
        algorithm = reference.digest_algorithm
        if algorithm == REQUIRED_ALGORITHM:
            continue
        if algorithm is None:
            problem = "is not pinned by digest"
        else:
            problem = f"is pinned by a {algorithm} digest, but the policy requires sha256"
        findings.append(
            Finding(
                field=container.field("image"),
                container=container.name,
                message=f'container "{container.name}" image {image!r} {problem}; pin it as '
                f"{image.partition('@')[0]}@sha256:<digest> ({HOW_TO_PIN})",
            )
        )
    return findings
