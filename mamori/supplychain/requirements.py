"""A policy's ``imageSignatures`` entries as values: which images, and whose signature counts.

Parsed once per policy (:mod:`mamori.policy.signatures`); the ``image-signatures`` rule asks the
caller's :class:`~mamori.supplychain.lookup.RegistryLookup` whether a digest meets one.
``fingerprint`` names what the entry trusts, so a verdict cached for one set of keys is never
reused for another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mamori.images import ImageReference, RegistryPattern, TrustedRegistries

if TYPE_CHECKING:  # cryptography is loaded only by policies that list keys
    from mamori.supplychain.cosign import PublicKey
    from mamori.supplychain.notation import NotationTrust


@dataclass(frozen=True, slots=True)
class SignatureRequirement:
    """One ``spec.imageSignatures`` entry: images it covers, keys and roots it trusts.

    ``index`` is its place in the list (messages name ``imageSignatures[i]``); ``listing`` the
    image patterns as written.
    """

    index: int
    images: tuple[RegistryPattern, ...]
    cosign_keys: tuple[PublicKey, ...] = ()
    notation: NotationTrust | None = None
    fingerprint: str = field(init=False, compare=False)
    coverage: str = field(init=False, repr=False, compare=False)
    """What decides a verdict: the images covered and the keys trusted (not the entry's place,
    which only messages name): two entries with the same coverage judge an image alike."""
    _matcher: TrustedRegistries = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # matched like trustedRegistries, compiled once: every image of every pod asks
        object.__setattr__(self, "_matcher", TrustedRegistries(self.images))
        trusted = [f"cosign:{key.key_id}" for key in self.cosign_keys]
        if self.notation is not None:
            trusted.append(f"notation:{self.notation.fingerprint}")
        digest = hashlib.sha256("\n".join(trusted).encode()).hexdigest()
        object.__setattr__(self, "fingerprint", digest[:32])
        object.__setattr__(self, "coverage", f"{digest[:32]} {self.listing}")

    def covers(self, reference: ImageReference) -> bool:
        return self._matcher.trusts(reference)

    @property
    def name(self) -> str:
        return f"imageSignatures[{self.index}]"

    @property
    def listing(self) -> str:
        return ", ".join(pattern.text for pattern in self.images)

    @property
    def accepted(self) -> str:
        """What counts, in words: ``a cosign signature by one of 2 keys or a Notation …``."""
        kinds = []
        if self.cosign_keys:
            count = len(self.cosign_keys)
            kinds.append(
                "a cosign signature by " + ("its key" if count == 1 else f"one of its {count} keys")
            )
        if self.notation is not None:
            if self.notation.signing_profiles:
                kinds.append("an AWS Signer signature by one of its signing profiles")
            else:
                kinds.append("a Notation signature under its trusted roots")
        return " or ".join(kinds)
