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


def ask_ahead(registry: RegistryLookup, questions: Questions) -> None:
    """Let a lookup that can (``prefetch``) ask about a pod's images at once, before the rule
    asks in turn; a lookup without it (a table, the operator's) answers as asked."""
    prefetch = getattr(registry, "prefetch", None)
    if prefetch is not None and len(questions) > 1:
        prefetch(questions)
