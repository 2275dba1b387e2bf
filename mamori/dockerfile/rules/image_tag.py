"""dockerfile-image-tag: base images name a version, not ``latest`` or nothing.

Spec: an image the build pulls that has no tag or the tag ``latest``, and no digest, is
reported as advice (a warning that never denies): the next build may get other content. When
the policy sets ``requireImageDigest``, ``dockerfile-image-digest`` already denies every image
without a digest, so this rule stays silent rather than report the same image twice.
"""

from __future__ import annotations

import re

from mamori.dockerfile.rules._images import pulled_images
from mamori.dockerfile.rules.registry import BuildContext, DockerfileFinding, rule
from mamori.dockerfile.stages import Dockerfile
from mamori.images import DEFAULT_TAG
from mamori.rules.registry import RuleSettings

# A tag written after the last path component: `name:tag` (a `host:port/` prefix is not one).
WRITTEN_TAG_RE = re.compile(r":[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def unless_digest_required(settings: RuleSettings) -> bool:
    return not settings.require_image_digest


@rule(
    rule_id="dockerfile-image-tag",
    summary="base images name a version tag (not latest, not none)",
    applies=unless_digest_required,
)
def check_image_tag(
    dockerfile: Dockerfile, settings: RuleSettings, context: BuildContext
) -> list[DockerfileFinding]:
    findings: list[DockerfileFinding] = []
    for image in pulled_images(dockerfile):
        reference = image.reference
        if reference is None or reference.digest is not None or reference.tag != DEFAULT_TAG:
            continue
        name = image.use.resolved.partition("@")[0]
        written = WRITTEN_TAG_RE.search(name.rpartition("/")[2]) is not None
        problem = "uses the tag latest" if written else "has no tag (so latest)"
        findings.append(
            image.finding(
                f"{image.use.field} {image.shown} {problem}: each build may get other content; "
                f"name a version ({reference.path.rpartition('/')[2]}:<version>), or better, "
                "pin a digest (name:<version>@sha256:<digest>)",
                advisory=True,
            )
        )
    return findings
