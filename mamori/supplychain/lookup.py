"""What a registry says about an image, as the rules ask it: which digest, and is it signed.

The ``image-signatures`` rule and ``image-vulnerabilities`` (with ``resolveImageTags``) stay
pure functions of the pod, the policy and these answers: the webhook passes a lookup that asks
registries (:mod:`mamori.supplychain.live`, cached, within a deadline), tests a table, and
``mamori check`` none unless given registry access, which skips what needs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from mamori.images import ImageReference
from mamori.supplychain.requirements import SignatureRequirement


class DigestAnswer(NamedTuple):
    """The digest an image reference runs as, or why it is not known.

    ``digest`` is None when the tag could not be resolved (``problem`` says why); ``resolved``
    is True when the digest came from the registry rather than from the reference itself, and
    ``note`` says where a digest not written in the reference came from, for messages
    (``what its tag points to now``, ``what its container runs``).
    """

    digest: str | None
    problem: str = ""
    resolved: bool = False
    note: str = ""


TAG_POINTS_TO = "what its tag points to now"
"""The :attr:`DigestAnswer.note` of a digest a registry gave for a tag."""


class SignatureAnswer(NamedTuple):
    """Whether a digest meets a signature requirement; ``detail`` says by what, or why not."""

    verified: bool
    detail: str


class RegistryLookup(Protocol):
    """Registry facts for the images of one admission request."""

    def digest(self, reference: ImageReference) -> DigestAnswer:
        """The digest ``reference`` runs as: its own, or what its tag points to now."""

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        """Whether ``digest`` (of ``reference``'s repository) is signed as ``requirement`` asks."""


Questions = Sequence[tuple[ImageReference, Sequence[SignatureRequirement]]]
"""Each image of a pod with the signature requirements that cover it."""


class LookupReport(NamedTuple):
    """What one review's registry lookup did, for metrics: images answered from kept whole
    answers (``kept``) or asked (``asked``), registry round trips started (``calls``), whether
    its time budget ran out (``exhausted``), and seconds waited on registries (``waited``)."""

    kept: int = 0
    asked: int = 0
    calls: int = 0
    exhausted: bool = False
    waited: float = 0.0


class ImageAnswers(NamedTuple):
    """All a registry said about one image: its digest, and one answer per requirement (in
    the requirements' order; none when the digest is not known)."""

    digest: DigestAnswer
    signatures: tuple[SignatureAnswer, ...]


def answers_for(registry: RegistryLookup, questions: Questions) -> list[ImageAnswers]:
    """Each image's answers, in the questions' order.

    A lookup that keeps whole answers (``answer_all``: the webhook's) gives them at once; any
    other is asked ahead where it can, then image by image, requirement by requirement.
    """
    answer_all = getattr(registry, "answer_all", None)
    if answer_all is not None:
        return list(answer_all(questions))
    ask_ahead(registry, questions)
    return [ask_in_turn(registry, reference, requirements) for reference, requirements in questions]


def seen_verified(
    registry: RegistryLookup,
    entries: Sequence[SignatureRequirement],
    references: Sequence[ImageReference],
) -> bool:
    """Whether a lookup that keeps whole pods (``verified_before``: the webhook's) found these
    images all verified under these entries, with every answer still counting."""
    verified_before = getattr(registry, "verified_before", None)
    return verified_before is not None and bool(verified_before(entries, references))


def remember_verified(
    registry: RegistryLookup,
    entries: Sequence[SignatureRequirement],
    references: Sequence[ImageReference],
    covered: int,
) -> None:
    """Tell a lookup that keeps whole pods that its last answers verified all ``covered``
    images of these (a lookup that does not, ignores it)."""
    remember = getattr(registry, "remember_verified", None)
    if remember is not None:
        remember(entries, references, covered)


def ask_in_turn(
    registry: RegistryLookup,
    reference: ImageReference,
    requirements: Sequence[SignatureRequirement],
) -> ImageAnswers:
    """One image's answers through the lookup's two questions."""
    digest = registry.digest(reference)
    if digest.digest is None:
        return ImageAnswers(digest, ())
    return ImageAnswers(
        digest,
        tuple(registry.signature(reference, digest.digest, r) for r in requirements),
    )


def ask_ahead(registry: RegistryLookup, questions: Questions) -> None:
    """Let a lookup that can (``prefetch``) ask about a pod's images at once, before the rule
    asks in turn; a lookup without it (a table, the operator's) answers as asked."""
    prefetch = getattr(registry, "prefetch", None)
    if prefetch is not None and len(questions) > 1:
        prefetch(questions)
