"""Notation signature verification on hand-built envelopes (certificates made here, no network).

Each case starts from one valid signature (a P-256 leaf under a root, JWS or COSE, signed
now) and changes one thing: the verdict must name what changed.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.supplychain.notation import (
    COSE_MEDIA_TYPE,
    JWS_MEDIA_TYPE,
    PAYLOAD_MEDIA_TYPE,
    SIGNATURE_ARTIFACT,
    NotationTrust,
    judge_envelope,
    load_notation_trust,
    verify_image,
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

IMAGE = "sha256:" + "a" * 64
OTHER_IMAGE = "sha256:" + "b" * 64
NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
EXPIRY = "io.cncf.notary.expiry"
AUTHENTIC = "io.cncf.notary.authenticSigningTime"
PLUGIN = "io.cncf.notary.verificationPlugin"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def name(common: str, organization: str = "acme") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


@dataclass(frozen=True)
class Issued:
    key: PrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


def issue(
    subject: x509.Name,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    key: PrivateKey | None = None,
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + DAY,
    ekus: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.CODE_SIGNING,),
) -> Issued:
    """A root (no issuer), an intermediate (ca) or a code-signing leaf, as Notation wants them."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca or issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        usage = dict(digital_signature=False, key_cert_sign=True, crl_sign=True)
    else:
        usage = dict(digital_signature=True, key_cert_sign=False, crl_sign=False)
        if ekus is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), False)
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usage,
        ),
        critical=True,
    )
    signer = issuer.key if issuer else key
    return Issued(key, builder.sign(signer, hashes.SHA256()))


@dataclass(frozen=True)
class Pki:
    root: Issued
    leaf: Issued
    stranger_root: Issued
    stranger_leaf: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = issue(name("acme root"))
    stranger = issue(name("stranger root", "stranger"))
    return Pki(
        root,
        issue(name("acme signer"), issuer=root),
        stranger,
        issue(name("stranger signer", "stranger"), issuer=stranger),
    )


def trust_in(*roots: Issued, identities: tuple[str, ...] = ()) -> NotationTrust:
    return load_notation_trust([root.pem for root in roots], identities)


# --- envelopes, built the way notation builds them -------------------------------------------


@dataclass
class Signature:
    """One Notation signature to build: every field is what a case may change."""

    form: Form = Form.NOTATION_JWS
    chain: tuple[Issued, ...] = ()  # leaf first; the signing key is the leaf's
    target: str = IMAGE
    headers: dict[str, Any] = field(default_factory=dict)
    critical: list[str] = field(default_factory=lambda: [SCHEME])
    algorithm: str = ""  # default: what the leaf's key calls for
    content_type: str = PAYLOAD_MEDIA_TYPE
    tamper: bool = False  # sign one payload, ship another

    def envelope(self) -> bytes:
        return jws(self) if self.form is Form.NOTATION_JWS else cose(self)

    @property
    def media_type(self) -> str:
        return JWS_MEDIA_TYPE if self.form is Form.NOTATION_JWS else COSE_MEDIA_TYPE


def payload_for(target: str) -> bytes:
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": target}
    return json.dumps({"targetArtifact": {**descriptor, "size": 401}}).encode()


def algorithm_of(key: PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return {2048: "PS256", 3072: "PS384", 4096: "PS512"}[key.key_size]
    return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]


def raw_signature(key: PrivateKey, data: bytes, algorithm: str) -> bytes:
    hashing: hashes.HashAlgorithm = {
        "256": hashes.SHA256(),
        "384": hashes.SHA384(),
        "512": hashes.SHA512(),
    }[algorithm[2:]]
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashing), salt_length=padding.PSS.DIGEST_LENGTH)
        return key.sign(data, pss, hashing)
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashing)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(signature: Signature) -> bytes:
    leaf_key = signature.chain[0].key
    algorithm = signature.algorithm or algorithm_of(leaf_key)
    header: dict[str, Any] = {
        "alg": algorithm,
        "crit": signature.critical,
        "cty": signature.content_type,
        SCHEME: "notary.x509",
        SIGNING_TIME: (NOW - HOUR).isoformat().replace("+00:00", "Z"),
    }
    for key, value in signature.headers.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value.isoformat() if isinstance(value, datetime.datetime) else value
    protected = b64url(json.dumps(header).encode())
    payload = b64url(payload_for(signature.target))
    signed = f"{protected}.{payload}".encode()
    if signature.tamper:
        payload = b64url(payload_for(OTHER_IMAGE))
    return json.dumps(
        {
            "payload": payload,
            "protected": protected,
            "header": {
                "x5c": [base64.b64encode(issued.der).decode() for issued in signature.chain],
                "io.cncf.notary.signingAgent": "test",
            },
            "signature": b64url(raw_signature(leaf_key, signed, algorithm)),
        }
    ).encode()


COSE_LABELS = {"PS256": -37, "PS384": -38, "PS512": -39, "ES256": -7, "ES384": -35, "ES512": -36}


def cose(signature: Signature) -> bytes:
    leaf_key = signature.chain[0].key
    algorithm = signature.algorithm or algorithm_of(leaf_key)
    header: dict[Any, Any] = {
        1: COSE_LABELS[algorithm],
        2: signature.critical,
        3: signature.content_type,
        SCHEME: "notary.x509",
        SIGNING_TIME: NOW - HOUR,
    }
    for key, value in signature.headers.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    protected = cbor2.dumps(header, datetime_as_timestamp=True)
    payload = payload_for(signature.target)
    signed = cbor2.dumps(["Signature1", protected, b"", payload])
    if signature.tamper:
        payload = payload_for(OTHER_IMAGE)
    unprotected = {33: [issued.der for issued in signature.chain]}
    message = [protected, unprotected, payload, raw_signature(leaf_key, signed, algorithm)]
    return cbor2.dumps(cbor2.CBORTag(18, message))


# --- a registry held in memory ---------------------------------------------------------------


@dataclass
class FakeRepository:
    """Manifests by tag or digest, blobs by digest; referrers None means the API answers 404."""

    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    referrer_index: bytes | None = None

    def manifest(self, tag_or_digest: str) -> bytes | None:
        return self.manifests.get(tag_or_digest)

    def referrers(self, digest: str) -> bytes | None:
        return self.referrer_index

    def blob(self, digest: str) -> bytes | None:
        return self.blobs.get(digest)

    def attach(
        self,
        envelope: bytes,
        media_type: str,
        *,
        subject: str = IMAGE,
        layers: int = 1,
        as_tag: bool = False,
    ) -> None:
        """Store a signature manifest referring to ``subject``, listed in the referrers index
        (or, ``as_tag``, in the ``sha256-<hex>`` tag index, the referrers API answering 404)."""
        self.blobs[digest_of(envelope)] = envelope
        layer = {"mediaType": media_type, "digest": digest_of(envelope), "size": len(envelope)}
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": SIGNATURE_ARTIFACT, "digest": digest_of(b"{}"), "size": 2},
            "layers": [layer] * layers,
            "subject": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": subject,
            },
        }
        body = json.dumps(manifest).encode()
        self.manifests[digest_of(body)] = body
        entry = {"digest": digest_of(body), "artifactType": SIGNATURE_ARTIFACT, "size": len(body)}
        tag = IMAGE.replace(":", "-")
        index_body = self.manifests.get(tag) if as_tag else self.referrer_index
        index: dict[str, Any] = (
            json.loads(index_body) if index_body else {"schemaVersion": 2, "manifests": []}
        )
        index["manifests"].append(entry)
        if as_tag:
            self.manifests[tag] = json.dumps(index).encode()
        else:
            self.referrer_index = json.dumps(index).encode()


def verdict_of(
    signature: Signature, trust: NotationTrust, *, now: datetime.datetime = NOW
) -> Verdict:
    repo = FakeRepository()
    repo.attach(signature.envelope(), signature.media_type)
    return verify_image(repo, IMAGE, trust, now=now)


# --- the table: one valid signature, one change each -----------------------------------------

Case = Callable[[Pki], tuple[Signature, NotationTrust, datetime.datetime]]


def signed(pki: Pki, **changes: Any) -> Signature:
    return replace(Signature(chain=(pki.leaf, pki.root)), **changes)


FORMS = [pytest.param(Form.NOTATION_JWS, id="jws"), pytest.param(Form.NOTATION_COSE, id="cose")]

REFUSED: list[Any] = [
    pytest.param(
        lambda p: (signed(p, target=OTHER_IMAGE), trust_in(p.root), NOW),
        Malformed,
        "names another image",
        id="payload-names-another-digest",
    ),
    pytest.param(
        lambda p: (signed(p, tamper=True), trust_in(p.root), NOW),
        Untrusted,
        "does not match its content",
        id="payload-altered-after-signing",
    ),
    pytest.param(
        lambda p: (signed(p, chain=(p.stranger_leaf, p.stranger_root)), trust_in(p.root), NOW),
        UnknownKey,
        "",
        id="chain-to-another-root",
    ),
    pytest.param(
        lambda p: (signed(p), trust_in(p.root), NOW + 2 * DAY),
        Untrusted,
        "'CN=acme signer,O=acme,ST=WA,C=US' expired on 2026-06-02 12:00:00 UTC",
        id="certificate-expired",
    ),
    pytest.param(
        lambda p: (signed(p), trust_in(p.root), NOW - 2 * DAY),
        Untrusted,
        "is not valid before 2026-05-31 12:00:00 UTC",
        id="certificate-not-yet-valid",
    ),
    pytest.param(
        lambda p: (signed(p, headers={SIGNING_TIME: NOW - 3 * DAY}), trust_in(p.root), NOW),
        Untrusted,
        "was not valid when the signature was made",
        id="signed-before-the-certificate-was-valid",
    ),
    pytest.param(
        lambda p: (
            signed(p, headers={EXPIRY: NOW - HOUR}, critical=[SCHEME, EXPIRY]),
            trust_in(p.root),
            NOW,
        ),
        Untrusted,
        "the signature expired on 2026-06-01 11:00:00 UTC",
        id="signature-expired",
    ),
    pytest.param(
        lambda p: (signed(p, headers={EXPIRY: NOW + HOUR}), trust_in(p.root), NOW),
        Malformed,
        "io.cncf.notary.expiry is present but not marked critical",
        id="expiry-not-critical",
    ),
    pytest.param(
        lambda p: (
            signed(p),
            trust_in(p.root, identities=("x509.subject: C=US, ST=WA, O=acme, CN=someone else",)),
            NOW,
        ),
        Untrusted,
        "matches none of the trusted identities",
        id="identity-not-trusted",
    ),
    pytest.param(
        lambda p: (
            signed(p, headers={"com.example.policy": "x"}, critical=[SCHEME, "com.example.policy"]),
            trust_in(p.root),
            NOW,
        ),
        Untrusted,
        "marks 'com.example.policy' critical, which mamori does not understand",
        id="critical-header-unknown",
    ),
    pytest.param(
        lambda p: (signed(p, critical=[SCHEME, "io.cncf.notary.absent"]), trust_in(p.root), NOW),
        Malformed,
        "critical header 'io.cncf.notary.absent' is absent",
        id="critical-header-missing",
    ),
    pytest.param(
        lambda p: (
            signed(p, headers={PLUGIN: "com.example.plugin"}, critical=[SCHEME, PLUGIN]),
            trust_in(p.root),
            NOW,
        ),
        Untrusted,
        "requires the Notation verification plugin 'com.example.plugin'",
        id="verification-plugin",
    ),
    pytest.param(
        lambda p: (signed(p, critical=[]), trust_in(p.root), NOW),
        Malformed,
        "io.cncf.notary.signingScheme is not marked critical",
        id="scheme-not-critical",
    ),
    pytest.param(
        lambda p: (signed(p, headers={SCHEME: "notary.other"}), trust_in(p.root), NOW),
        Malformed,
        "signing scheme 'notary.other' is not Notation's",
        id="unknown-scheme",
    ),
    pytest.param(
        lambda p: (signed(p, headers={SIGNING_TIME: None}), trust_in(p.root), NOW),
        Malformed,
        "io.cncf.notary.signingTime is missing",
        id="no-signing-time",
    ),
    pytest.param(
        lambda p: (signed(p, content_type="application/json"), trust_in(p.root), NOW),
        Malformed,
        "payload content type is not Notation's",
        id="wrong-content-type",
    ),
    pytest.param(
        lambda p: (signed(p, algorithm="ES384"), trust_in(p.root), NOW),
        Malformed,
        "the envelope says ES384 but its key calls for ES256",
        id="algorithm-not-the-keys",
    ),
    pytest.param(
        lambda p: (
            signed(
                p,
                chain=(
                    issue(name("web"), issuer=p.root, ekus=(ExtendedKeyUsageOID.SERVER_AUTH,)),
                    p.root,
                ),
            ),
            trust_in(p.root),
            NOW,
        ),
        Untrusted,
        "extended key usage lacks codeSigning",
        id="leaf-not-for-code-signing",
    ),
    pytest.param(
        lambda p: (
            signed(
                p,
                chain=(
                    issue(
                        name("both"),
                        issuer=p.root,
                        ekus=(ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.SERVER_AUTH),
                    ),
                    p.root,
                ),
            ),
            trust_in(p.root),
            NOW,
        ),
        Untrusted,
        "extended key usage has serverAuth",
        id="leaf-also-for-tls",
    ),
    pytest.param(
        lambda p: (signed(p, chain=(p.root,)), trust_in(p.root), NOW),
        Untrusted,
        "not fit for code signing",
        id="signed-by-the-root-itself",
    ),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("case", "expected", "reason"), REFUSED)
def test_a_changed_signature_is_refused_saying_why(
    pki: Pki, form: Form, case: Case, expected: type, reason: str
) -> None:
    signature, trust, now = case(pki)
    result = verdict_of(replace(signature, form=form), trust, now=now)
    assert isinstance(result, expected), result
    if isinstance(result, UnknownKey):
        assert result.forms == (form,)
    else:
        assert reason in result.reason  # type: ignore[union-attr]


ACCEPTED: list[Any] = [
    pytest.param(lambda p: (signed(p), trust_in(p.root), NOW), 0, id="leaf-and-root-in-chain"),
    pytest.param(
        lambda p: (signed(p, chain=(p.leaf,)), trust_in(p.root), NOW), 0, id="root-not-in-chain"
    ),
    pytest.param(
        lambda p: (signed(p), trust_in(p.stranger_root, p.root), NOW), 1, id="second-trusted-root"
    ),
    pytest.param(
        lambda p: (
            signed(p),
            trust_in(p.root, identities=("x509.subject: C=US, S=WA, O=acme",)),
            NOW,
        ),
        0,
        id="identity-subset-of-subject",
    ),
    pytest.param(
        lambda p: (signed(p), trust_in(p.root, identities=("*",)), NOW), 0, id="any-identity"
    ),
    pytest.param(
        lambda p: (
            signed(p, headers={EXPIRY: NOW + HOUR}, critical=[SCHEME, EXPIRY]),
            trust_in(p.root),
            NOW,
        ),
        0,
        id="signature-not-yet-expired",
    ),
    pytest.param(
        # signingAuthority: the signing time is authentic, so an expired certificate still counts
        lambda p: (
            signed(
                p,
                headers={
                    SCHEME: "notary.x509.signingAuthority",
                    SIGNING_TIME: None,
                    AUTHENTIC: NOW - HOUR,
                },
                critical=[SCHEME, AUTHENTIC],
            ),
            trust_in(p.root),
            NOW + 2 * DAY,
        ),
        0,
        id="signing-authority-after-expiry",
    ),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("case", "entry"), ACCEPTED)
def test_a_valid_signature_is_verified_naming_the_root_and_signer(
    pki: Pki, form: Form, case: Case, entry: int
) -> None:
    signature, trust, now = case(pki)
    result = verdict_of(replace(signature, form=form), trust, now=now)
    leaf_sha256 = hashlib.sha256(signature.chain[0].der).hexdigest()
    assert result == Verified(entry, leaf_sha256, form)


def test_an_intermediate_between_leaf_and_root_is_followed(pki: Pki) -> None:
    intermediate = issue(name("acme issuing"), issuer=pki.root, ca=True)
    leaf = issue(name("acme build"), issuer=intermediate)
    signature = Signature(chain=(leaf, intermediate, pki.root))
    assert isinstance(verdict_of(signature, trust_in(pki.root)), Verified)


@pytest.mark.parametrize("bits", [2048, 3072])
def test_rsa_pss_signatures_verify(pki: Pki, bits: int) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    leaf = issue(name("rsa signer"), issuer=pki.root, key=key)
    for form in Form.NOTATION_JWS, Form.NOTATION_COSE:
        result = verdict_of(Signature(form=form, chain=(leaf, pki.root)), trust_in(pki.root))
        assert isinstance(result, Verified) and result.form is form


# --- finding signatures ----------------------------------------------------------------------


def test_no_signature_is_not_signed(pki: Pki) -> None:
    assert verify_image(FakeRepository(), IMAGE, trust_in(pki.root), now=NOW) == NotSigned()


def test_the_tag_schema_index_is_read_when_the_registry_has_no_referrers_api(pki: Pki) -> None:
    repo = FakeRepository()
    signature = signed(pki)
    repo.attach(signature.envelope(), signature.media_type, as_tag=True)
    assert repo.referrer_index is None
    assert isinstance(verify_image(repo, IMAGE, trust_in(pki.root), now=NOW), Verified)


def test_a_broken_signature_does_not_hide_a_good_one(pki: Pki) -> None:
    repo = FakeRepository()
    repo.attach(b"not an envelope", JWS_MEDIA_TYPE)
    repo.attach(b"{}", JWS_MEDIA_TYPE, layers=2)
    stranger = signed(pki, chain=(pki.stranger_leaf, pki.stranger_root))
    repo.attach(stranger.envelope(), stranger.media_type)
    good = signed(pki, form=Form.NOTATION_COSE)
    repo.attach(good.envelope(), good.media_type)
    result = verify_image(repo, IMAGE, trust_in(pki.root), now=NOW)
    assert isinstance(result, Verified) and result.form is Form.NOTATION_COSE


def test_refusals_outrank_unreadable_signatures_and_unknown_signers(pki: Pki) -> None:
    repo = FakeRepository()
    repo.attach(b"garbage", COSE_MEDIA_TYPE)
    stranger = signed(pki, chain=(pki.stranger_leaf, pki.stranger_root))
    repo.attach(stranger.envelope(), stranger.media_type)
    assert isinstance(verify_image(repo, IMAGE, trust_in(pki.root), now=NOW), Malformed)
    expired = signed(pki)
    repo.attach(expired.envelope(), expired.media_type)
    result = verify_image(repo, IMAGE, trust_in(pki.root), now=NOW + 2 * DAY)
    assert isinstance(result, Untrusted) and "expired on" in result.reason


def _listed(manifest: dict[str, Any], *, blobs: dict[str, bytes] | None = None) -> FakeRepository:
    body = json.dumps(manifest).encode()
    entry = {"digest": digest_of(body), "artifactType": SIGNATURE_ARTIFACT}
    index = json.dumps({"manifests": [entry]}).encode()
    return FakeRepository({digest_of(body): body}, blobs or {}, index)


SUBJECT = {"digest": IMAGE}
CONFIG = {"mediaType": SIGNATURE_ARTIFACT}
ENVELOPE = b"{}"
LAYER = {"mediaType": JWS_MEDIA_TYPE, "digest": digest_of(ENVELOPE)}

HOSTILE_REPOSITORIES = [
    pytest.param(
        FakeRepository(referrer_index=b"\xff\xfe"),
        "referrers index is not JSON",
        id="index-not-json",
    ),
    pytest.param(FakeRepository(referrer_index=b"[]"), "not a JSON object", id="index-not-object"),
    pytest.param(
        FakeRepository(referrer_index=b'{"manifests": 3}'), "'manifests'", id="manifests-not-list"
    ),
    pytest.param(
        FakeRepository(
            referrer_index=json.dumps(
                {"manifests": [{"artifactType": SIGNATURE_ARTIFACT, "digest": "../x"}]}
            ).encode()
        ),
        "digest is not sha256",
        id="entry-digest-not-sha256",
    ),
    pytest.param(
        FakeRepository(
            referrer_index=json.dumps(
                {"manifests": [{"artifactType": SIGNATURE_ARTIFACT, "digest": OTHER_IMAGE}]}
            ).encode()
        ),
        "signature manifest is missing",
        id="manifest-missing",
    ),
    pytest.param(
        _listed({"subject": {"digest": OTHER_IMAGE}, "config": CONFIG, "layers": [LAYER]}),
        "subject is another image",
        id="subject-other",
    ),
    pytest.param(
        _listed({"config": CONFIG, "layers": [LAYER]}), "subject is another image", id="no-subject"
    ),
    pytest.param(
        _listed({"subject": SUBJECT, "config": {"mediaType": "x"}, "layers": [LAYER]}),
        "not a Notation signature",
        id="not-notation",
    ),
    pytest.param(
        _listed({"subject": SUBJECT, "config": CONFIG, "layers": []}),
        "exactly one layer",
        id="no-layer",
    ),
    pytest.param(
        _listed(
            {"subject": SUBJECT, "config": CONFIG, "layers": [{**LAYER, "mediaType": "text/plain"}]}
        ),
        "not JWS or COSE",
        id="layer-type",
    ),
    pytest.param(
        _listed({"subject": SUBJECT, "config": CONFIG, "layers": [LAYER]}),
        "envelope blob",
        id="blob-missing",
    ),
]


@pytest.mark.parametrize(("repo", "reason"), HOSTILE_REPOSITORIES)
def test_hostile_registry_content_is_malformed(pki: Pki, repo: FakeRepository, reason: str) -> None:
    result = verify_image(repo, IMAGE, trust_in(pki.root), now=NOW)
    assert isinstance(result, Malformed) and reason in result.reason, result


def test_a_digest_that_is_not_sha256_is_malformed(pki: Pki) -> None:
    result = verify_image(FakeRepository(), "latest", trust_in(pki.root), now=NOW)
    assert isinstance(result, Malformed)


def test_a_naive_clock_is_a_programming_error(pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_image(FakeRepository(), IMAGE, trust_in(pki.root), now=NOW.replace(tzinfo=None))


def _jws_with(pki: Pki, **members: Any) -> bytes:
    document = json.loads(jws(signed(pki)))
    document.update(members)
    return json.dumps(document).encode()


HOSTILE_ENVELOPES: list[Any] = [
    pytest.param(JWS_MEDIA_TYPE, lambda p: b"", id="jws-empty"),
    pytest.param(JWS_MEDIA_TYPE, lambda p: b'"text"', id="jws-not-object"),
    pytest.param(
        JWS_MEDIA_TYPE, lambda p: _jws_with(p, signatures=[]), id="jws-general-serialization"
    ),
    pytest.param(
        JWS_MEDIA_TYPE, lambda p: _jws_with(p, protected="!!"), id="jws-protected-not-b64url"
    ),
    pytest.param(
        JWS_MEDIA_TYPE,
        lambda p: _jws_with(p, protected=b64url(b"[1]")),
        id="jws-protected-not-object",
    ),
    pytest.param(JWS_MEDIA_TYPE, lambda p: _jws_with(p, header={"x5c": []}), id="jws-empty-chain"),
    pytest.param(
        JWS_MEDIA_TYPE, lambda p: _jws_with(p, header={"x5c": ["AAAA"]}), id="jws-chain-not-der"
    ),
    pytest.param(
        JWS_MEDIA_TYPE, lambda p: _jws_with(p, header={"x5c": [7]}), id="jws-chain-not-text"
    ),
    pytest.param(
        JWS_MEDIA_TYPE,
        lambda p: _jws_with(p, header={"x5c": [base64.b64encode(p.leaf.der).decode()] * 9}),
        id="jws-chain-too-long",
    ),
    pytest.param(
        JWS_MEDIA_TYPE, lambda p: _jws_with(p, signature="é"), id="jws-signature-not-ascii"
    ),
    pytest.param(COSE_MEDIA_TYPE, lambda p: b"", id="cose-empty"),
    pytest.param(COSE_MEDIA_TYPE, lambda p: cbor2.dumps([1, 2, 3, 4]), id="cose-untagged"),
    pytest.param(
        COSE_MEDIA_TYPE,
        lambda p: cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b""])),
        id="cose-three-parts",
    ),
    pytest.param(
        COSE_MEDIA_TYPE,
        lambda p: cbor2.dumps(cbor2.CBORTag(18, [b"\xa0", {}, None, b""])),
        id="cose-detached",
    ),
    pytest.param(
        COSE_MEDIA_TYPE,
        lambda p: cbor2.dumps(cbor2.CBORTag(18, [b"\xff", {}, b"", b""])),
        id="cose-protected-not-cbor",
    ),
    pytest.param(
        COSE_MEDIA_TYPE,
        lambda p: cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: [1]}), {}, b"", b""])),
        id="cose-alg-unhashable",
    ),
    pytest.param(
        COSE_MEDIA_TYPE,
        lambda p: cbor2.dumps(
            cbor2.CBORTag(18, [cbor2.dumps({1: -7, 2: []}), {33: "x"}, b"", b""])
        ),
        id="cose-chain-not-bytes",
    ),
    pytest.param(COSE_MEDIA_TYPE, lambda p: b"\x9f" * 64, id="cose-indefinite-nesting"),
    pytest.param(COSE_MEDIA_TYPE, lambda p: b"\x81" * 5000 + b"\x00", id="cose-deep-nesting"),
    pytest.param(
        COSE_MEDIA_TYPE, lambda p: b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff", id="cose-huge-length"
    ),
    pytest.param(COSE_MEDIA_TYPE, lambda p: jws(signed(p)), id="jws-served-as-cose"),
    pytest.param(
        JWS_MEDIA_TYPE, lambda p: cose(signed(p, form=Form.NOTATION_COSE)), id="cose-served-as-jws"
    ),
]


@pytest.mark.parametrize(("media_type", "make"), HOSTILE_ENVELOPES)
def test_a_hostile_envelope_is_malformed_not_an_exception(
    pki: Pki, media_type: str, make: Callable[[Pki], bytes]
) -> None:
    result = judge_envelope(media_type, make(pki), IMAGE, trust_in(pki.root), now=NOW)
    assert isinstance(result, Malformed), result


@pytest.fixture(scope="module")
def valid_envelopes(pki: Pki) -> dict[Form, bytes]:
    return {
        form: signed(pki, form=form).envelope() for form in (Form.NOTATION_JWS, Form.NOTATION_COSE)
    }


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_change_to_a_valid_envelope_gives_a_verdict_and_never_verifies(
    pki: Pki, valid_envelopes: dict[Form, bytes], data: st.DataObject
) -> None:
    form = data.draw(st.sampled_from([Form.NOTATION_JWS, Form.NOTATION_COSE]))
    original = valid_envelopes[form]
    position = data.draw(st.integers(0, len(original) - 1))
    replacement = data.draw(st.binary(min_size=0, max_size=8))
    changed = original[:position] + replacement + original[position + 1 :]
    media_type = JWS_MEDIA_TYPE if form is Form.NOTATION_JWS else COSE_MEDIA_TYPE
    result = judge_envelope(media_type, changed, IMAGE, trust_in(pki.root), now=NOW)
    assert isinstance(result, Verified | Malformed | Untrusted | UnknownKey)
    if isinstance(result, Verified):  # only a change outside what is signed, or no change
        assert result.key_id == hashlib.sha256(pki.leaf.der).hexdigest()


# --- configuration ---------------------------------------------------------------------------


def test_trust_loads_bundles_and_numbers_roots_by_entry(pki: Pki) -> None:
    bundle = pki.stranger_root.pem + pki.root.pem
    trust = load_notation_trust([pki.leaf.pem, bundle.decode()])
    assert [root.entry for root in trust.roots] == [0, 1, 1]
    assert trust.identities == ()
    assert load_notation_trust(pki.root.pem).roots[0].certificate == pki.root.certificate
    assert trust.fingerprint != load_notation_trust([pki.leaf.pem]).fingerprint


BAD_TRUST = [
    pytest.param([], (), "no trusted certificates", id="no-certificates"),
    pytest.param(
        ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
        (),
        "entry 0",
        id="bad-pem",
    ),
    pytest.param(None, ("x509.subject: C=US, ST=WA",), "lacks O", id="identity-without-o"),
    pytest.param(
        None, ("x509.subject: C=US+ST=WA, O=x",), "multi-valued", id="identity-multi-valued"
    ),
    pytest.param(None, ("x509.subject: C=US, ST=WA, O=#0403",), "hex-encoded", id="identity-hex"),
    pytest.param(
        None, ("x509.subject: C=US, ST=WA, O=a, O=b",), "lists O twice", id="identity-duplicate"
    ),
    pytest.param(None, ("x509.san: example",), "only x509.subject", id="identity-other-kind"),
    pytest.param(
        None, ("*", "x509.subject: C=US, ST=WA, O=a"), "the only one", id="wildcard-and-more"
    ),
    pytest.param(
        None, ("x509.subject: C=US, ST=WA, garbage",), "is not TYPE=value", id="identity-garbage"
    ),
]


@pytest.mark.parametrize(("certificates", "identities", "message"), BAD_TRUST)
def test_bad_trust_is_a_value_error_saying_what(
    pki: Pki, certificates: list[str] | None, identities: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_notation_trust([pki.root.pem] if certificates is None else certificates, identities)


def test_identities_parse_escapes_and_the_s_alias() -> None:
    root = issue(name("r"))
    trust = load_notation_trust(
        [root.pem], ["x509.subject: C=US, S=WA, O=Acme\\, Inc., CN=build \\2B test"]
    )
    assert trust.identities[0].attributes == (
        ("C", "US"),
        ("ST", "WA"),
        ("O", "Acme, Inc."),
        ("CN", "build + test"),
    )
