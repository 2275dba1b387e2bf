"""image-signatures: an image that a policy says must be signed runs only with a valid signature.

Spec: for each init, regular and ephemeral container image matched by an entry of the policy's
``spec.imageSignatures``, the digest that will run (the reference's own, or the digest its tag
points to now, asked from the registry) must carry a signature that the entry accepts: a cosign
signature by one of its keys, or a Notation signature by a certificate under its roots. Every
entry that matches the image must be met. The message names the image, the digest judged and
the reason (not signed, signed by an unknown key, expired certificate, registry unreachable…),
the reason first, so that it survives the API server's cut of long warnings.

Images that do not parse are left to ``image-reference``. Without registry access (``mamori
check`` by default) the rule is not run: it cannot know, and does not guess.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules.registry import ImageEvidence, Level, Needs, RuleSettings, evidence_rule

RULE_ID = "image-signatures"
HOW_TO_FIX = (
    "sign the digest with a key or certificate the policy trusts (cosign sign --key, or notation "
    "sign), or deploy a digest that is signed"
)


def requires_signatures(settings: RuleSettings) -> bool:
    """The rule is on only when the policy lists ``imageSignatures``."""
    return bool(settings.signatures)


@evidence_rule(
    rule_id=RULE_ID,
    level=Level.IMAGE,
    summary="images the policy names are signed by a key or certificate it trusts",
    applies=requires_signatures,
    needs=frozenset({Needs.REGISTRY}),
)
def check_image_signatures(
    pod: PodContext, settings: RuleSettings, evidence: ImageEvidence
) -> list[Finding]:
    registry = evidence.registry
    findings: list[Finding] = []
    if registry is None:
        return findings
    # loaded with registry access only
    from mamori.supplychain.lookup import answers_for, remember_verified, seen_verified

    entries = settings.signatures
    parsed = pod.parsed_images()
    references = [reference for _, _, reference in parsed]
    if seen_verified(registry, entries, references):
        return findings  # the same images, all verified, and every answer still counts
    covered = []
    for container, image, reference in parsed:
        requirements = tuple([entry for entry in entries if entry.covers(reference)])
        if requirements:
            covered.append((container, image, reference, requirements))
    if not covered:
        return findings
    answers = answers_for(registry, [(item[2], item[3]) for item in covered])
    for (container, image, _, requirements), found in zip(covered, answers, strict=True):
        answer, verdicts = found
        if answer.digest is None:
            findings.append(
                Finding(
                    field=container.field("image"),
                    container=container.name,
                    message=f"{_subject(container.name, image)}: its signature cannot be "
                    f"checked, because its tag could not be resolved to a digest "
                    f"({answer.problem}); the webhook must reach the registry with credentials "
                    f"it accepts (the pod's imagePullSecrets, the "
                    f"configured credentials or ECR), also for an image pinned by digest",
                )
            )
            continue
        if all(verdict.verified for verdict in verdicts):
            continue
        judged = f"{answer.digest}, {answer.note}" if answer.note else answer.digest
        for requirement, verdict in zip(requirements, verdicts, strict=True):
            if verdict.verified:
                continue
            findings.append(
                Finding(
                    field=container.field("image"),
                    container=container.name,
                    message=f"{_subject(container.name, image)}: {verdict.detail} "
                    f"(spec.{requirement.name} requires a signature of digest {judged}; "
                    f"it accepts {requirement.accepted}); {HOW_TO_FIX}",
                )
            )
    if not findings:
        remember_verified(registry, entries, references, len(covered))
    return findings


def _subject(container: str, image: str) -> str:
    return f'container "{container}" image {image!r}'
