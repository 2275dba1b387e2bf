"""image-reference: every container image must be a valid image reference.

Spec: ``spec.initContainers[*].image``, ``spec.containers[*].image`` and
``spec.ephemeralContainers[*].image`` must be non-empty strings that parse under the
distribution reference grammar (:func:`mamori.images.parse_reference`). Always on.

mamori's own addition to the Pod Security Standards: the registry and digest rules can only judge
an image they can read, so an unparsable reference is denied rather than waved through.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.images import EXAMPLE_REFERENCE, InvalidReference
from mamori.podspec import PodContext
from mamori.rules.registry import Level, RuleSettings, rule

FIX = (
    f"write it as [registry/]repository[:tag][@sha256:digest] in lower case, "
    f"such as {EXAMPLE_REFERENCE!r}"
)


@rule(
    rule_id="image-reference",
    level=Level.IMAGE,
    summary="every container image is a valid image reference",
)
def check_image_reference(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    findings: list[Finding] = []
    if pod.images_all_parsed:
        return findings
    for container in pod.containers():
        image = container.spec.get("image")
        field = container.field("image")
        if not isinstance(image, str) or not image:
            got = "is missing" if image is None or image == "" else "is not a string"
            findings.append(
                Finding(
                    field=field,
                    container=container.name,
                    message=f'container "{container.name}" image {got}; set {field} to an '
                    f"image reference such as {EXAMPLE_REFERENCE!r}",
                )
            )
            continue
        try:
            container.image_reference()
        except InvalidReference as error:
            findings.append(
                Finding(
                    field=field,
                    container=container.name,
                    message=f'container "{container.name}" image {image!r} is not a valid '
                    f"image reference: {error}; {FIX}",
                )
            )
    return findings
