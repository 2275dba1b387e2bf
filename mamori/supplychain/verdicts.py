"""What a signature check says about one image digest: the verdicts cosign and Notation share.

The admission rule turns any verdict but :class:`Verified` into a denial (or a warning), so
each one carries what an admin needs to act: which configured key or root vouched, or, when
none did, why in plain words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Form(enum.Enum):
    """Where and how the signature is stored next to the image."""

    LEGACY = "legacy .sig tag (simple signing)"
    BUNDLE = "sigstore bundle (DSSE)"
    NOTATION_JWS = "Notation signature (JWS)"
    NOTATION_COSE = "Notation signature (COSE)"


@dataclass(frozen=True, slots=True)
class Verified:
    """A signature of this digest, vouched for by configured trust.

    ``key_index`` is which configured entry vouched: cosign, the index of the public key;
    Notation, the index of the trusted-certificates entry the chain ends in. ``key_id`` is the
    sha256 (hex) of what signed: cosign, the key's DER SubjectPublicKeyInfo; Notation, the
    signing (leaf) certificate's DER, the thumbprint Notation itself records.
    """

    key_index: int
    key_id: str
    form: Form


@dataclass(frozen=True, slots=True)
class NotSigned:
    pass


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """Signatures exist, but none verifies with a configured key or chains to a trusted root."""

    forms: tuple[Form, ...]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A signature this verifier cannot read; ``reason`` says what is wrong with it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Untrusted:
    """A signature that reads, and is refused: ``reason`` says why, in words an admin acts on
    (a certificate expired on …, the signature expired on …, a subject not among the trusted
    identities, content altered after signing, a critical header not understood)."""

    reason: str


Verdict = Verified | NotSigned | UnknownKey | Malformed | Untrusted
