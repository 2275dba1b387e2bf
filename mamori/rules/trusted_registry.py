"""trusted-registry: images come only from the registries a policy trusts.

Spec: when ``spec.trustedRegistries`` is non-empty, the normalized reference of every init,
regular and ephemeral container image (``nginx`` → ``docker.io/library/nginx``) must match one
entry: same host (case-insensitive, port significant), ``*`` standing for one DNS label, and the
entry's path prefix ending on a ``/`` boundary (see :class:`mamori.images.RegistryPattern`).
Images that do not parse are left to ``image-reference``, which denies them.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules.registry import Level, RuleSettings, rule


def has_registries(settings: RuleSettings) -> bool:
    """The rule is on only when the policy lists trusted registries."""
    return bool(settings.trusted_registries)


@rule(
    rule_id="trusted-registry",
    level=Level.IMAGE,
    summary="images are pulled only from the policy's trusted registries",
    applies=has_registries,
)
def check_trusted_registry(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    registries = settings.registries
    findings: list[Finding] = []
    if not registries.patterns:
        return findings
    for container, image, reference in pod.parsed_images():
        if registries.trusts(reference):
            continue
        findings.append(
            Finding(
                field=container.field("image"),
                container=container.name,
                message=f'container "{container.name}" image {image!r} is pulled from '
                f"{reference.registry}/{reference.path}, which is not a trusted registry "
                f"(trusted: {registries.listing}); push the image to a trusted registry, or add "
                "its registry to the policy's spec.trustedRegistries",
            )
        )
    return findings
