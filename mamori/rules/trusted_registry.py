"""trusted-registry: images come only from the registries a policy trusts.

Spec: when ``spec.trustedRegistries`` is non-empty, the normalized reference of every init,
regular and ephemeral container image (``nginx`` → ``docker.io/library/nginx``) must match one
entry: same host (case-insensitive, port significant), ``*`` standing for one DNS label, and the
entry's path prefix ending on a ``/`` boundary (see :class:`mamori.images.RegistryPattern`).
Images that do not parse are left to ``image-reference``, which denies them.
"""

from __future__ import annotations

from collections.abc import Iterator

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import parsed_images
from mamori.rules.registry import Level, RuleSettings, rule


@rule(
    rule_id="trusted-registry",
    level=Level.IMAGE,
    summary="images are pulled only from the policy's trusted registries",
)
def check_trusted_registry(pod: PodContext, settings: RuleSettings) -> Iterator[Finding]:
    patterns = settings.trusted_registries
    if not patterns:
        return
    for container, image, reference in parsed_images(pod):
        if any(pattern.matches(reference) for pattern in patterns):
            continue
        allowed = ", ".join(str(pattern) for pattern in patterns)
        yield Finding(
            field=container.field("image"),
            container=container.name,
            message=f'container "{container.name}" image {image!r} is pulled from '
            f"{reference.registry}/{reference.path}, which is not a trusted registry "
            f"(trusted: {allowed}); push the image to a trusted registry, or add its registry "
            "to the policy's spec.trustedRegistries",
        )
