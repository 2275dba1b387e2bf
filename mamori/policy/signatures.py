"""The ``spec.imageSignatures`` section: which images must be signed, and by whom.

Each entry becomes a :class:`~mamori.supplychain.requirements.SignatureRequirement` with its
keys and roots loaded once, here: a key that does not load is a policy error naming the entry,
never a denial of every pod at admission time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mamori.policy.errors import PolicyError, shown
from mamori.policy.shape import COSIGN_KEYS, NOTATION_TRUST, SIGNATURE_REQUIREMENT
from mamori.policy.vulnerabilities import parse_image_prefixes
from mamori.supplychain.requirements import SignatureRequirement

if TYPE_CHECKING:  # cryptography is loaded only when a policy lists keys or roots
    from mamori.supplychain.cosign import PublicKey
    from mamori.supplychain.notation import NotationTrust

MAX_REQUIREMENTS = 32


def parse_image_signatures(value: object, *, path: str) -> tuple[SignatureRequirement, ...]:
    """Validate ``spec.imageSignatures``; absent, null or empty: no signature is required."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(
            path, f"must be a list of {{images, cosign, notation}}, got {shown(value)}"
        )
    if len(value) > MAX_REQUIREMENTS:
        raise PolicyError(path, f"must list at most {MAX_REQUIREMENTS} entries")
    return tuple(
        _requirement(item, index, path=f"{path}[{index}]") for index, item in enumerate(value)
    )


def _requirement(value: object, index: int, *, path: str) -> SignatureRequirement:
    entry = SIGNATURE_REQUIREMENT.read(value, path=path)
    if entry is None:
        raise PolicyError(path, "must be an object with images and cosign or notation")
    if not entry.get("images"):
        raise PolicyError(f"{path}.images", "must list at least one image prefix")
    images = parse_image_prefixes(entry["images"], path=f"{path}.images")
    cosign = COSIGN_KEYS.read(entry.get("cosign"), path=f"{path}.cosign")
    notation = NOTATION_TRUST.read(entry.get("notation"), path=f"{path}.notation")
    if cosign is None and notation is None:
        raise PolicyError(path, "must set cosign or notation (or both): whose signature counts")
    return SignatureRequirement(
        index=index,
        images=images,
        cosign_keys=() if cosign is None else _cosign_keys(cosign, path=f"{path}.cosign"),
        notation=None if notation is None else _notation(notation, path=f"{path}.notation"),
    )


def _cosign_keys(section: Mapping[str, Any], *, path: str) -> tuple[PublicKey, ...]:
    from mamori.supplychain.cosign import load_public_keys

    pems = _texts(section, "publicKeys", path=path, what="PEM public keys", required=True)
    keys: list[PublicKey] = []
    for index, pem in enumerate(pems):
        try:
            keys.extend(load_public_keys([pem]))
        except (ValueError, TypeError) as error:
            raise PolicyError(
                f"{path}.publicKeys[{index}]",
                f"is not a usable cosign public key: {_reason(error)}",
            ) from None
    return tuple(keys)


def _notation(section: Mapping[str, Any], *, path: str) -> NotationTrust:
    from mamori.supplychain.notation import load_notation_trust

    certificates = _texts(
        section, "trustedCertificates", path=path, what="PEM certificates", required=True
    )
    identities = _texts(
        section,
        "trustedIdentities",
        path=path,
        what="x509.subject identities or AWS Signer signing profile ARNs",
        required=False,
    )
    try:
        return load_notation_trust(certificates, identities)
    except ValueError as error:
        raise PolicyError(path, _reason(error)) from None


def _texts(
    section: Mapping[str, Any], name: str, *, path: str, what: str, required: bool
) -> list[str]:
    value = section.get(name)
    where = f"{path}.{name}"
    if value is None:
        if required:
            raise PolicyError(where, "must be set")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(where, f"must be a list of {what}, got {shown(value)}")
    if required and not value:
        raise PolicyError(where, f"must list at least one of the {what}")
    return value


def _reason(error: Exception) -> str:
    """A loader's complaint, one line, bounded: never the key material itself."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]
