"""Verify Notation signatures of an image digest: X.509 certificates and a trust store.

Notation stores a signature as an OCI manifest whose subject is the image, found through the
referrers API or, where the registry has none (404), the ``sha256-<hex>`` tag schema index; its
one layer is the envelope: JWS JSON (``application/jose+json``) or COSE_Sign1
(``application/cose``). The envelope carries the signing certificate chain (``x5c`` / label 33)
and signs a payload naming the image's digest.

A signature counts, as under Notation's ``strict`` level, only if: the envelope's signature
verifies with its own leaf certificate (integrity); the chain reaches a configured trusted
certificate and meets Notation's code-signing profile (authenticity: key usage
digitalSignature, extended key usage codeSigning where present, CA constraints); every
certificate is valid at ``now`` (or, under the ``notary.x509.signingAuthority`` scheme, at the
authentic signing time); the signer's subject is one of the trusted identities, if any are
set; the signature has not expired; every critical header is understood; and the payload
names the digest judged. There is no revocation check (OCSP/CRL need the network), no RFC 3161
timestamp (certificates must be valid now) and no verification plugin is run: a signature that
names AWS Signer's plugin is judged here as that plugin judges it (mamori.supplychain.aws_signer:
its trusted identities are signing profile ARNs), and one that names any other plugin is refused,
saying which.

Why no JWS library: after the envelope is parsed, JWS and COSE need the same work (algorithm
from the key, raw r‖s ECDSA or RSASSA-PSS with ``cryptography``), and jwcrypto would still need
Notation's critical headers registered and ``x5c``, ``crit`` and the payload read by hand. COSE
is decoded with cbor2 (bounded depth, no indefinite lengths); pycose is unmaintained and breaks
with cbor2 6. Everything read from the registry is hostile: any shape not expected yields a
verdict, never an exception. Registry failures propagate as registry.RegistryError.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from mamori.supplychain import aws_signer
from mamori.supplychain.artifacts import (
    MAX_CANDIDATES,
    SHA256_DIGEST_RE,
    ArtifactSource,
    BadContent,
    descriptor_digest,
    fallback_tag,
    json_object,
    required,
)
from mamori.supplychain.verdicts import (
    Form,
    Malformed,
    NotSigned,
    UnknownKey,
    Untrusted,
    Verdict,
    Verified,
)

__all__ = [
    "NotationTrust",
    "TrustedIdentity",
    "TrustedRoot",
    "judge_envelope",
    "load_notation_trust",
    "verify_image",
]

SIGNATURE_ARTIFACT = "application/vnd.cncf.notary.signature"
JWS_MEDIA_TYPE = "application/jose+json"
COSE_MEDIA_TYPE = "application/cose"
PAYLOAD_MEDIA_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"
SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY = "io.cncf.notary.expiry"
VERIFICATION_PLUGIN = "io.cncf.notary.verificationPlugin"
VERIFICATION_PLUGIN_MIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
# Critical headers this module acts on; any other one marked critical refuses the signature.
UNDERSTOOD_CRITICAL: Final = frozenset({SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME, EXPIRY})
# Certificates read from one envelope's chain: Notation chains are leaf, intermediates, root.
MAX_CHAIN: Final = 8
COSE_SIGN1_TAG: Final = 18
COSE_ALGORITHMS: Final = {
    -37: "PS256",
    -38: "PS384",
    -39: "PS512",
    -7: "ES256",
    -35: "ES384",
    -36: "ES512",
}
HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# The algorithm Notation pairs with each key: the envelope must say the same.
RSA_ALGORITHMS: Final = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
EC_ALGORITHMS: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
# Extended key usages Notation refuses on a signing certificate.
FORBIDDEN_EKUS: Final = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
# RFC 4514 short names, as Notation writes a subject before comparing it.
SHORT_NAMES: Final = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.POSTAL_CODE: "POSTALCODE",
}
MANDATORY_IDENTITY_ATTRIBUTES: Final = ("C", "ST", "O")
IDENTITY_PREFIX = "x509.subject:"


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedRoot:
    """A trusted certificate and the configured entry (PEM bundle) it came from."""

    certificate: x509.Certificate
    entry: int


@dataclass(frozen=True, slots=True)
class TrustedIdentity:
    """An ``x509.subject`` trusted identity: every attribute listed must be in the subject."""

    text: str  # as configured
    attributes: tuple[tuple[str, str], ...]  # (short name, value), e.g. ("O", "acme")


@dataclass(frozen=True, slots=True)
class NotationTrust:
    """Notation's trust store and trusted identities for one policy entry.

    ``identities`` are the ``x509.subject`` ones, ``signing_profiles`` the AWS Signer ones
    (signing profile ARNs, for signatures that name AWS Signer's plugin); one entry has one
    kind or none. None means any signer whose chain reaches ``roots`` (Notation's ``"*"``),
    except AWS Signer, whose certificates are the same for every AWS account.
    ``fingerprint`` names exactly what is trusted, so a cached verdict is never reused for
    other trust.
    """

    roots: tuple[TrustedRoot, ...]
    identities: tuple[TrustedIdentity, ...] = ()
    signing_profiles: tuple[aws_signer.SigningProfile, ...] = ()
    fingerprint: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        parts = [
            f"{root.entry}:{hashlib.sha256(_der(root.certificate)).hexdigest()}"
            for root in self.roots
        ]
        parts += [repr(identity.attributes) for identity in self.identities]
        parts += [f"aws-signer:{profile.text}" for profile in self.signing_profiles]
        object.__setattr__(
            self, "fingerprint", hashlib.sha256("\n".join(parts).encode()).hexdigest()
        )


def load_notation_trust(
    certificates: bytes | str | Iterable[bytes | str], identities: Iterable[str] = ()
) -> NotationTrust:
    """Trusted certificates (one PEM bundle per entry, or one bundle) and trusted identities:
    ``x509.subject`` ones or AWS Signer signing profile ARNs (``"*"`` or none: any signer
    under the certificates but AWS Signer).

    Raises ValueError naming the entry and what is wrong with it: a configuration error.
    """
    if isinstance(certificates, str | bytes):
        certificates = [certificates]
    roots: list[TrustedRoot] = []
    for entry, pem in enumerate(certificates):
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            loaded = x509.load_pem_x509_certificates(data)
        except ValueError as error:
            raise ValueError(
                f"trusted certificates entry {entry} is not PEM X.509 certificates ({error})"
            ) from None
        roots.extend(TrustedRoot(certificate, entry) for certificate in loaded)
    if not roots:
        raise ValueError("no trusted certificates: Notation needs at least one root")
    texts = list(identities)
    if "*" in (text.strip() for text in texts):
        if len(texts) > 1:
            raise ValueError("trusted identity `*` (any signer) must be the only one listed")
        return NotationTrust(tuple(roots))
    subjects: list[TrustedIdentity] = []
    profiles: list[aws_signer.SigningProfile] = []
    for text in texts:
        profile = aws_signer.parse_signing_profile(text)
        if profile is None:
            subjects.append(_parse_identity(text))
        else:
            profiles.append(profile)
    if subjects and profiles:
        # Notation keeps a signing service's roots in a trust store of their own, so that they
        # vouch for nothing else; an entry of each kind keeps them as apart
        raise ValueError(
            "trusted identities mix x509.subject identities and AWS Signer signing profile "
            "ARNs: an entry trusts one kind or the other, so that its roots vouch only for the "
            "signatures they are meant for"
        )
    return NotationTrust(tuple(roots), tuple(subjects), tuple(profiles))


def _parse_identity(text: str) -> TrustedIdentity:
    """``x509.subject: C=US, ST=WA, O=acme`` (the prefix may be left out)."""
    value = text.strip()
    if value.startswith(IDENTITY_PREFIX):
        value = value[len(IDENTITY_PREFIX) :].strip()
    elif ":" in value.split("=", 1)[0]:
        raise ValueError(
            f"trusted identity {text!r}: only x509.subject identities and AWS Signer signing "
            "profile ARNs are supported (write `x509.subject: C=US, ST=WA, O=acme`, "
            f"`{aws_signer.ARN_EXAMPLE}`, or `*`)"
        )
    try:
        attributes = _parse_dn(value)
    except ValueError as error:
        raise ValueError(f"trusted identity {text!r}: {error}") from None
    names = [name for name, _ in attributes]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise ValueError(f"trusted identity {text!r} lists {duplicate} twice")
    missing = [name for name in MANDATORY_IDENTITY_ATTRIBUTES if name not in names]
    if missing:
        raise ValueError(
            f"trusted identity {text!r} lacks {', '.join(missing)}: Notation requires C, ST "
            "(or S) and O at least"
        )
    return TrustedIdentity(text, tuple(attributes))


DN_ATTRIBUTE_RE: Final = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)\s*=(.*)", re.S)


def _parse_dn(text: str) -> list[tuple[str, str]]:
    """An RFC 4514 DN into (type, value) pairs; multi-valued RDNs and ``=#`` hex values refused
    (Notation refuses them too)."""
    if not text:
        raise ValueError("the distinguished name is empty")
    if "=#" in text:
        raise ValueError("hex-encoded (=#) values are not supported")
    rdns: list[str] = []
    current: list[str] = []
    escaped = False
    for character in text:
        if escaped:
            current.append("\\" + character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ",":
            rdns.append("".join(current))
            current = []
        elif character == "+":
            raise ValueError("multi-valued RDNs (+) are not supported")
        else:
            current.append(character)
    if escaped:
        raise ValueError("the distinguished name ends in a lone backslash")
    rdns.append("".join(current))
    attributes = []
    for rdn in rdns:
        match = DN_ATTRIBUTE_RE.fullmatch(rdn)
        if match is None:
            raise ValueError(f"{rdn.strip()!r} is not TYPE=value")
        name = match.group(1).upper()
        attributes.append(("ST" if name == "S" else name, _unescape(match.group(2).strip())))
    return attributes


def _unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        escape = match.group(1)
        return chr(int(escape, 16)) if len(escape) == 2 else escape

    return re.sub(r"\\([0-9A-Fa-f]{2}|.)", one, value)


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Envelope:
    """What a JWS or COSE envelope says, before anything in it is trusted."""

    form: Form
    signed: bytes  # the exact bytes the signature covers
    signature: bytes
    algorithm: str  # "PS256" … "ES512"
    content_type: object
    critical: tuple[object, ...]
    headers: dict[Any, object]  # the protected header, names (or COSE labels) as written
    chain: tuple[x509.Certificate, ...]
    payload: bytes


def verify_image(
    source: ArtifactSource, digest: str, trust: NotationTrust, *, now: datetime.datetime
) -> Verdict:
    """Whether ``digest`` carries a Notation signature that ``trust`` accepts at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if SHA256_DIGEST_RE.fullmatch(digest) is None:
        return Malformed(f"{digest[:80]!r} is not a sha256 digest")
    refused: list[str] = []
    problems: list[str] = []
    found: list[Form] = []
    for listed in _signature_envelopes(source, digest):
        if isinstance(listed, BadContent):
            problems.append(str(listed))
            continue
        verdict = judge_envelope(*listed, digest, trust, now=now)
        if isinstance(verdict, Verified):
            return verdict
        if isinstance(verdict, Untrusted):
            refused.append(verdict.reason)
        elif isinstance(verdict, Malformed):
            problems.append(verdict.reason)
        elif isinstance(verdict, UnknownKey):
            found.extend(verdict.forms)
    if refused:
        return Untrusted("; ".join(dict.fromkeys(refused[:4])))
    if problems:
        return Malformed("; ".join(dict.fromkeys(problems[:4])))
    if found:
        return UnknownKey(tuple(dict.fromkeys(found)))
    return NotSigned()


def judge_envelope(
    media_type: str, body: bytes, digest: str, trust: NotationTrust, *, now: datetime.datetime
) -> Verdict:
    """The verdict on one envelope (the layer of one Notation signature manifest), whose
    ``media_type`` is JWS_MEDIA_TYPE or COSE_MEDIA_TYPE."""
    form = Form.NOTATION_JWS if media_type == JWS_MEDIA_TYPE else Form.NOTATION_COSE
    try:
        envelope = _parse_jws(body) if form is Form.NOTATION_JWS else _parse_cose(body)
        return _judge(envelope, digest, trust, now)
    except BadContent as error:
        return Malformed(f"{form.value}: {error}")
    except (ValueError, TypeError, OverflowError, RecursionError, UnsupportedAlgorithm) as error:
        # cryptography and cbor2 on hostile bytes: a verdict, never a crash
        return Malformed(f"{form.value}: unreadable ({type(error).__name__})")


def _judge(
    envelope: _Envelope, digest: str, trust: NotationTrust, now: datetime.datetime
) -> Verdict:
    form = envelope.form
    headers = _read_headers(envelope)
    if isinstance(headers, Untrusted):
        return headers
    leaf = envelope.chain[0]
    subject = _shown_subject(leaf)
    if not _signature_verifies(envelope, leaf):
        return Untrusted(
            f"the {form.value} by {subject} does not match its content: "
            "altered after signing, or corrupt"
        )
    anchored = _anchored(envelope.chain, trust)
    if anchored is None:
        return UnknownKey((form,))
    if headers.authority_vouches:  # the signing time is authentic: valid then is enough
        moments = [(headers.signing_time, False)]
    else:  # notary.x509: valid now, and when signed
        moments = [(now, True), (headers.signing_time, False)]
    for moment, is_now in moments:
        for certificate in envelope.chain:
            problem = _validity_problem(certificate, moment, is_now=is_now)
            if problem:
                return Untrusted(problem)
    at = headers.signing_time if headers.authority_vouches else now
    root = _verify_chain(envelope.chain, trust, at)
    if isinstance(root, str):
        return Untrusted(f"the certificate chain of {subject} is not fit for code signing: {root}")
    refused = _identity_refusal(leaf, headers.aws_signer_profile, trust)
    if refused is not None:
        return refused
    if headers.expiry is not None and now >= headers.expiry:
        return Untrusted(f"the signature expired on {_when(headers.expiry)}")
    named = _target_digest(envelope.payload)
    if named != digest:
        return Malformed(f"{form.value}: a valid signature names another image ({named[:80]})")
    return Verified(root.entry, hashlib.sha256(_der(leaf)).hexdigest(), form)


def _identity_refusal(
    leaf: x509.Certificate, aws_signer_profile: str | None, trust: NotationTrust
) -> Untrusted | None:
    """Why the signer is none of the trusted identities, or None if it is one.

    An AWS Signer signature is matched by its signed signing profile version, as AWS Signer's
    plugin matches it (Notation hands that step to the plugin); any other by its certificate's
    subject, as Notation matches it.
    """
    profiles, subjects = trust.signing_profiles, trust.identities
    if aws_signer_profile is not None:
        if not profiles:
            return Untrusted(
                f"the signature was made by AWS Signer (signing profile version "
                f"{aws_signer_profile[:200]!r}); it counts only if trustedIdentities lists its "
                f"signing profile ARN ({aws_signer.ARN_EXAMPLE}), since AWS Signer's "
                "certificates are the same for every AWS account"
            )
        if aws_signer.matching_profile(aws_signer_profile, profiles) is None:
            return Untrusted(
                f"the AWS Signer signing profile version {aws_signer_profile[:200]!r} matches "
                f"none of the trusted signing profiles "
                f"({'; '.join(profile.text for profile in profiles)[:300]})"
            )
        return None
    if not subjects:
        if not profiles:
            return None  # any signer under the roots
        return Untrusted(
            "the trusted identities are AWS Signer signing profiles, and the signature by "
            f"{_shown_subject(leaf)} was not made by AWS Signer"
        )
    if not _identity_matches(leaf, subjects):
        return Untrusted(
            f"the signing certificate's subject {_shown_subject(leaf)} matches none of the "
            f"trusted identities ({'; '.join(identity.text for identity in subjects)[:300]})"
        )
    return None


@dataclass(frozen=True, slots=True)
class _Headers:
    signing_time: datetime.datetime
    # notary.x509.signingAuthority: the signing time is authentic, so certificates need be
    # valid only then (Notation); notary.x509: valid now, and at the signing time
    authority_vouches: bool
    expiry: datetime.datetime | None
    # the signing profile version ARN, for a signature that names AWS Signer's plugin
    aws_signer_profile: str | None = None


def _read_headers(envelope: _Envelope) -> _Headers | Untrusted:
    """Notation's protected header rules; refuses what asks for more than this module does."""
    headers, critical = envelope.headers, envelope.critical
    if envelope.content_type != PAYLOAD_MEDIA_TYPE:
        raise BadContent("the payload content type is not Notation's payload")
    if SIGNING_SCHEME not in critical:
        raise BadContent(f"{SIGNING_SCHEME} is not marked critical")
    for name in critical:
        if name not in headers:
            raise BadContent(f"critical header {str(name)[:80]!r} is absent")
    for name in (EXPIRY, AUTHENTIC_SIGNING_TIME, VERIFICATION_PLUGIN):
        if name in headers and name not in critical:
            raise BadContent(f"{name} is present but not marked critical")
    scheme = headers[SIGNING_SCHEME]
    understood = UNDERSTOOD_CRITICAL
    aws_signer_profile: str | None = None
    if VERIFICATION_PLUGIN in headers:
        plugin = headers[VERIFICATION_PLUGIN]
        if plugin != aws_signer.PLUGIN:
            return Untrusted(
                f"the signature requires the Notation verification plugin {str(plugin)[:120]!r}, "
                f"which mamori does not run (of plugins, it judges only {aws_signer.PLUGIN}'s "
                "signatures, natively)"
            )
        named = aws_signer.signed_profile_version(headers, scheme)
        if isinstance(named, Untrusted):
            return named
        aws_signer_profile = named
        understood = UNDERSTOOD_CRITICAL | {VERIFICATION_PLUGIN} | aws_signer.PROCESSED_ATTRIBUTES
    unknown = [name for name in critical if name not in understood]
    if unknown:
        return Untrusted(
            f"the signature marks {str(unknown[0])[:80]!r} critical, which mamori does not "
            "understand"
        )
    expiry = _time(headers, EXPIRY, envelope.form) if EXPIRY in headers else None
    if scheme == SCHEME_X509:
        return _Headers(_time(headers, SIGNING_TIME, envelope.form), False, expiry)
    if scheme == SCHEME_SIGNING_AUTHORITY:
        signed_at = _time(headers, AUTHENTIC_SIGNING_TIME, envelope.form)
        return _Headers(signed_at, True, expiry, aws_signer_profile)
    raise BadContent(f"the signing scheme {str(scheme)[:80]!r} is not Notation's")


def _time(headers: dict[object, object], name: str, form: Form) -> datetime.datetime:
    """A time header: RFC 3339 text in JWS, a CBOR tag-1 date (decoded by cbor2) in COSE."""
    value = headers.get(name)
    if form is Form.NOTATION_JWS and isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise BadContent(f"{name} is not an RFC 3339 time") from None
    if not isinstance(value, datetime.datetime) or value.tzinfo is None:
        raise BadContent(f"{name} is missing or not a time with a zone")
    return value


def _signature_verifies(envelope: _Envelope, leaf: x509.Certificate) -> bool:
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        expected = RSA_ALGORITHMS.get(key.key_size)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        expected = EC_ALGORITHMS.get(key.curve.name)
    else:
        raise BadContent("the signing key is neither RSA nor ECDSA")
    if expected is None:
        raise BadContent("the signing key's size or curve is not one Notation allows")
    if envelope.algorithm != expected:
        raise BadContent(f"the envelope says {envelope.algorithm} but its key calls for {expected}")
    hash_type = HASHES[expected[2:]]
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=padding.PSS.DIGEST_LENGTH)
            key.verify(envelope.signature, envelope.signed, pss, hash_type())
        else:
            size = (key.curve.key_size + 7) // 8
            raw = envelope.signature
            if len(raw) != 2 * size:
                return False
            r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
            der = utils.encode_dss_signature(r, s)
            key.verify(der, envelope.signed, ec.ECDSA(hash_type()))
    except InvalidSignature:
        return False
    return True


def _anchored(chain: Sequence[x509.Certificate], trust: NotationTrust) -> TrustedRoot | None:
    """The trusted certificate in the chain, or that issued its last certificate."""
    for certificate in chain:
        for root in trust.roots:
            if certificate == root.certificate:
                return root
    last = chain[-1]
    for root in trust.roots:
        if last.issuer == root.certificate.subject:
            try:
                last.verify_directly_issued_by(root.certificate)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return root
    return None


def _validity_problem(certificate: x509.Certificate, at: datetime.datetime, *, is_now: bool) -> str:
    """Why ``certificate`` is not valid at ``at`` (now, or the signing time), or ""."""
    subject = _shown_subject(certificate)
    before, after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if before <= at <= after:
        return ""
    if not is_now:
        return (
            f"certificate {subject} was not valid when the signature was made "
            f"({_when(at)}; valid from {_when(before)} to {_when(after)})"
        )
    if at > after:
        return f"certificate {subject} expired on {_when(after)}"
    return f"certificate {subject} is not valid before {_when(before)}"


def _verify_chain(
    chain: Sequence[x509.Certificate], trust: NotationTrust, at: datetime.datetime
) -> TrustedRoot | str:
    """The trusted root the chain builds to under Notation's code-signing profile, or why not."""
    store = Store([root.certificate for root in trust.roots])
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(at)
        .max_chain_depth(MAX_CHAIN)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_SIGNER_POLICY)
        .build_client_verifier()
    )
    try:
        built = verifier.verify(chain[0], list(chain[1:]))
    except VerificationError as error:
        return str(error)[:300]
    top = built.chain[-1]
    for root in trust.roots:
        if root.certificate == top:
            return root
    return "the chain ends outside the trusted certificates"


def _signer_key_usage(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage) -> None:
    if not usage.digital_signature:
        raise ValueError("the signing certificate's key usage lacks digitalSignature")


def _signer_extended_usage(
    _policy: Policy, _cert: x509.Certificate, usage: x509.ExtendedKeyUsage | None
) -> None:
    if usage is None:
        return  # absent: Notation accepts it
    if ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        raise ValueError("the signing certificate's extended key usage lacks codeSigning")
    forbidden = [name for oid, name in FORBIDDEN_EKUS.items() if oid in usage]
    if forbidden:
        raise ValueError(f"the signing certificate's extended key usage has {forbidden[0]}")


def _signer_constraints(
    _policy: Policy, _cert: x509.Certificate, constraints: x509.BasicConstraints | None
) -> None:
    if constraints is not None and constraints.ca:
        raise ValueError("the signing certificate is a CA")


def _ca_constraints(
    _policy: Policy, _cert: x509.Certificate, constraints: x509.BasicConstraints
) -> None:
    if not constraints.ca:
        raise ValueError("an issuing certificate is not a CA")


def _ca_key_usage(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage) -> None:
    if not usage.key_cert_sign:
        raise ValueError("an issuing certificate's key usage lacks keyCertSign")


_SIGNER_POLICY: Final = (
    ExtensionPolicy.permit_all()
    .require_present(x509.KeyUsage, Criticality.CRITICAL, _signer_key_usage)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _signer_extended_usage)
    .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, _signer_constraints)
)
_CA_POLICY: Final = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _ca_constraints)
    .require_present(x509.KeyUsage, Criticality.CRITICAL, _ca_key_usage)
)


def _identity_matches(leaf: x509.Certificate, identities: Sequence[TrustedIdentity]) -> bool:
    """Notation's rule: every attribute of one trusted identity is in the leaf's subject."""
    subject: dict[str, str] = {}
    for rdn in leaf.subject.rdns:
        attributes = list(rdn)
        if len(attributes) != 1:
            return False  # Notation refuses multi-valued RDNs
        attribute = attributes[0]
        name = SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        if name in subject or not isinstance(attribute.value, str):
            return False  # duplicate or binary attributes: Notation refuses them
        subject[name] = attribute.value
    return any(
        all(subject.get(name) == value for name, value in identity.attributes)
        for identity in identities
    )


def _target_digest(payload: bytes) -> str:
    document = json_object(payload, "signed payload")
    target = required(document, "targetArtifact", dict)
    named = required(target, "digest", str)
    required(target, "mediaType", str)
    return str(named)


# --- finding the envelopes -------------------------------------------------------------------


def _signature_envelopes(
    source: ArtifactSource, digest: str
) -> Iterator[tuple[str, bytes] | BadContent]:
    """(media type, envelope) of each Notation signature that refers to ``digest``, or what is
    wrong with one: a broken entry does not hide the others."""
    index_body = source.referrers(digest)
    if index_body is None:
        index_body = source.manifest(fallback_tag(digest))
    if index_body is None:
        return
    try:
        entries = required(json_object(index_body, "referrers index"), "manifests", list)
    except BadContent as error:
        yield error
        return
    signatures = [
        entry
        for entry in entries
        if isinstance(entry, dict) and entry.get("artifactType") == SIGNATURE_ARTIFACT
    ]
    for entry in signatures[:MAX_CANDIDATES]:
        try:
            yield _envelope_of(source, entry, digest)
        except BadContent as error:
            yield error


def _envelope_of(source: ArtifactSource, entry: dict[str, Any], digest: str) -> tuple[str, bytes]:
    manifest_body = source.manifest(descriptor_digest(entry))
    if manifest_body is None:
        raise BadContent("a listed signature manifest is missing")
    manifest = json_object(manifest_body, "signature manifest")
    subject = manifest.get("subject")
    if not isinstance(subject, dict) or subject.get("digest") != digest:
        raise BadContent("a signature manifest's subject is another image")
    config = manifest.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    if SIGNATURE_ARTIFACT not in (manifest.get("artifactType"), config_type):
        raise BadContent("a listed signature manifest is not a Notation signature")
    layers = required(manifest, "layers", list)
    if len(layers) != 1 or not isinstance(layers[0], dict):
        raise BadContent("a Notation signature manifest must have exactly one layer")
    media_type = layers[0].get("mediaType")
    if media_type not in (JWS_MEDIA_TYPE, COSE_MEDIA_TYPE):
        raise BadContent(f"the envelope media type {str(media_type)[:80]!r} is not JWS or COSE")
    envelope_digest = descriptor_digest(layers[0])
    envelope = source.blob(envelope_digest)
    if envelope is None:
        raise BadContent(f"the envelope blob {envelope_digest} is missing")
    return media_type, envelope


# --- envelopes: JWS JSON and COSE_Sign1 ------------------------------------------------------

JWS_MEMBERS: Final = frozenset({"payload", "protected", "header", "signature"})
B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)


def _parse_jws(body: bytes) -> _Envelope:
    document = json_object(body, "JWS envelope")
    if not set(document) <= JWS_MEMBERS:
        raise BadContent("the JWS is not in flattened JSON serialization")
    protected_text = required(document, "protected", str)
    payload_text = required(document, "payload", str)
    protected = json_object(_b64url(protected_text, "protected header"), "protected header")
    unprotected = required(document, "header", dict)
    certificates = required(unprotected, "x5c", list)
    chain = _chain(
        _std_b64(item, "x5c certificate") if isinstance(item, str) else None
        for item in certificates
    )
    critical = required(protected, "crit", list)
    algorithm = required(protected, "alg", str)
    return _Envelope(
        form=Form.NOTATION_JWS,
        signed=f"{protected_text}.{payload_text}".encode("ascii"),
        signature=_b64url(required(document, "signature", str), "signature"),
        algorithm=algorithm,
        content_type=protected.get("cty"),
        critical=tuple(critical),
        headers=dict(protected),
        chain=chain,
        payload=_b64url(payload_text, "payload"),
    )


def _parse_cose(body: bytes) -> _Envelope:
    message = _cbor(body, "COSE envelope")
    if not isinstance(message, cbor2.CBORTag) or message.tag != COSE_SIGN1_TAG:
        raise BadContent("the envelope is not a tagged COSE_Sign1")
    parts = message.value
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise BadContent("COSE_Sign1 is not [protected, unprotected, payload, signature]")
    protected_bytes, unprotected, payload, signature = parts
    if not isinstance(protected_bytes, bytes) or not isinstance(unprotected, Mapping):
        raise BadContent("the COSE headers are not a byte string and a map")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise BadContent("the COSE payload is detached or the signature is not bytes")
    protected = _cbor(protected_bytes, "COSE protected header")
    if not isinstance(protected, Mapping):
        raise BadContent("the COSE protected header is not a map")
    label = protected.get(1)
    algorithm = COSE_ALGORITHMS.get(label) if isinstance(label, int) else None
    if algorithm is None:
        raise BadContent("the COSE algorithm is not one Notation uses")
    critical = protected.get(2)
    if not isinstance(critical, list | tuple):
        raise BadContent("the COSE crit header is missing")
    certificates = unprotected.get(33)
    if isinstance(certificates, bytes):
        certificates = [certificates]
    if not isinstance(certificates, list | tuple):
        raise BadContent("the COSE x5chain (label 33) is missing")
    return _Envelope(
        form=Form.NOTATION_COSE,
        signed=cbor2.dumps(["Signature1", protected_bytes, b"", payload]),
        signature=signature,
        algorithm=algorithm,
        content_type=protected.get(3),
        critical=tuple(critical),
        headers=dict(protected),
        chain=_chain(item if isinstance(item, bytes) else None for item in certificates),
        payload=payload,
    )


def _cbor(body: bytes, what: str) -> Any:
    try:
        return cbor2.loads(body, max_depth=8, allow_indefinite=False, allow_duplicate_keys=False)
    except Exception:  # cbor2 raises many kinds on hostile bytes; none is a crash here
        raise BadContent(f"the {what} is not CBOR") from None


def _chain(ders: Iterable[bytes | None]) -> tuple[x509.Certificate, ...]:
    chain: list[x509.Certificate] = []
    for der in ders:
        if der is None:
            raise BadContent("a certificate of the chain is not bytes")
        if len(chain) == MAX_CHAIN:
            raise BadContent(f"the certificate chain is longer than {MAX_CHAIN}")
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise BadContent("a certificate of the chain is not DER X.509") from None
    if not chain:
        raise BadContent("the certificate chain is empty")
    return tuple(chain)


def _b64url(text: str, what: str) -> bytes:
    if not B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise BadContent(f"the {what} is not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _std_b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadContent(f"the {what} is not base64") from None


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def _shown_subject(certificate: x509.Certificate) -> str:
    try:
        text = certificate.subject.rfc4514_string()
    except ValueError:
        text = "(unreadable subject)"
    return repr(text[:200])


def _when(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
