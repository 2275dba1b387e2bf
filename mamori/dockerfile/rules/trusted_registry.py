"""dockerfile-trusted-registry: a Dockerfile's base images come from the trusted registries.

Spec: when the policy lists ``trustedRegistries``, every image the build pulls (``FROM`` after
build-argument substitution, ``COPY --from=<image>``; not a stage of the same Dockerfile, not
``scratch``) must match an entry, exactly as a pod's images must (``mamori.images``'
matcher). An image that depends on a build argument without default cannot be shown trusted
and is reported.
"""

from __future__ import annotations

from mamori.dockerfile.rules._images import pulled_images
from mamori.dockerfile.rules.registry import BuildContext, DockerfileFinding, rule
from mamori.dockerfile.stages import Dockerfile
from mamori.rules.registry import RuleSettings


def has_registries(settings: RuleSettings) -> bool:
    """On only when the policy lists trusted registries, as for pods."""
    return bool(settings.trusted_registries)


@rule(
    rule_id="dockerfile-trusted-registry",
    summary="base images are pulled only from the policy's trusted registries",
    applies=has_registries,
)
def check_trusted_registry(
    dockerfile: Dockerfile, settings: RuleSettings, context: BuildContext
) -> list[DockerfileFinding]:
    registries = settings.registries
    findings: list[DockerfileFinding] = []
    for image in pulled_images(dockerfile):
        if image.reference is None:
            findings.append(image.undecided())
        elif not registries.trusts(image.reference):
            reference = image.reference
            findings.append(
                image.finding(
                    f"{image.use.field} {image.shown} is pulled from "
                    f"{reference.registry}/{reference.path}, which is not a trusted registry "
                    f"(trusted: {registries.listing}); build on an image from a trusted "
                    "registry, or add its registry to the policy's spec.trustedRegistries"
                )
            )
    return findings
