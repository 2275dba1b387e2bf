"""Verify cosign key-pair signatures of an image digest (ECDSA P-256), with `cryptography` only.

cosign stores signatures next to the image, in two forms:

* legacy: a manifest tagged ``sha256-<hex>.sig`` whose simple-signing layers carry the
  signature in the ``dev.cosignproject.cosign/signature`` annotation; the signed payload names
  the image in ``critical.image.docker-manifest-digest``.
* bundle (cosign v3's default): a Sigstore bundle v0.3 manifest that refers to the image, found
  through the referrers API or, where the registry has none (404), the ``sha256-<hex>`` tag
  schema index. The bundle's DSSE envelope is signed over PAE(payloadType, payload), and the
  in-toto statement's subject names the image.

A signature counts only if a configured key verifies it AND its payload names the digest
judged: a valid signature of another image proves nothing about this one. Everything read from
the registry is hostile until verified; the fetch bounds its size, and any shape this module
does not expect yields a :class:`Malformed` verdict, never an exception.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mamori.supplychain.artifacts import (
    MAX_CANDIDATES,
    SHA256_DIGEST_RE,
    ArtifactSource,
    BadContent,
    base64_field,
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
    Verdict,
    Verified,
)

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"


@dataclass(frozen=True, slots=True)
class PublicKey:
    key: ec.EllipticCurvePublicKey
    key_id: str


def load_public_keys(pems: Iterable[bytes | str]) -> tuple[PublicKey, ...]:
    """PEM ECDSA P-256 public keys; anything else raises ValueError (a configuration error)."""
    keys = []
    for pem in pems:
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ValueError("cosign keys must be ECDSA P-256 public keys")
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keys.append(PublicKey(key, hashlib.sha256(der).hexdigest()))
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class _Candidate:
    form: Form
    signed: bytes  # the exact bytes the signature covers
    signature: bytes
    payload: bytes  # the payload whose claims name the image


def verify_image(source: ArtifactSource, digest: str, keys: Sequence[PublicKey]) -> Verdict:
    """Whether ``digest`` carries a cosign signature by one of ``keys``, in either form.

    Registry failures (timeouts, auth, oversize) propagate as registry.RegistryError: they are
    not a verdict about the image.
    """
    match = SHA256_DIGEST_RE.fullmatch(digest)
    if match is None:
        return Malformed(f"{digest[:80]!r} is not a sha256 digest")
    problems: list[str] = []
    found: list[Form] = []
    for form, finder in ((Form.LEGACY, _legacy_candidates), (Form.BUNDLE, _bundle_candidates)):
        try:
            for candidate in finder(source, digest):
                found.append(form)
                verdict = _judge(candidate, digest, keys)
                if isinstance(verdict, Verified):
                    return verdict
                if isinstance(verdict, Malformed):
                    problems.append(verdict.reason)
        except BadContent as error:
            problems.append(f"{form.name.lower()}: {error}")
    if problems:
        return Malformed("; ".join(problems[:4]))
    if found:
        return UnknownKey(tuple(dict.fromkeys(found)))
    return NotSigned()


def _judge(candidate: _Candidate, digest: str, keys: Sequence[PublicKey]) -> Verdict:
    for index, public in enumerate(keys):
        try:
            public.key.verify(candidate.signature, candidate.signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        try:
            named = _named_digests(candidate)
        except BadContent as error:
            return Malformed(f"{candidate.form.name.lower()}: {error}")
        if digest not in named:
            return Malformed(
                f"{candidate.form.name.lower()}: a valid signature names another image"
            )
        return Verified(index, public.key_id, candidate.form)
    return UnknownKey((candidate.form,))


def _named_digests(candidate: _Candidate) -> set[str]:
    document = json_object(candidate.payload, "signed payload")
    if candidate.form is Form.LEGACY:
        named = required(
            required(required(document, "critical", dict), "image", dict),
            "docker-manifest-digest",
            str,
        )
        return {named}
    if required(document, "_type", str) != IN_TOTO_STATEMENT_V1:
        raise BadContent("the statement is not an in-toto Statement v1")
    digests = set()
    for subject in required(document, "subject", list)[:MAX_CANDIDATES]:
        if not isinstance(subject, dict):
            raise BadContent("a statement subject is not an object")
        value = required(required(subject, "digest", dict), "sha256", str)
        digests.add(f"sha256:{value}")
    return digests


# --- legacy: the sha256-<hex>.sig tag -------------------------------------------------------


def _legacy_candidates(source: ArtifactSource, digest: str) -> Iterator[_Candidate]:
    body = source.manifest(fallback_tag(digest) + ".sig")
    if body is None:
        return
    manifest = json_object(body, "signature manifest")
    layers = required(manifest, "layers", list)
    for layer in layers[:MAX_CANDIDATES]:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING:
            continue
        layer_digest = descriptor_digest(layer)
        annotations = required(layer, "annotations", dict)
        signature = base64_field(required(annotations, SIGNATURE_ANNOTATION, str), "signature")
        payload = source.blob(layer_digest)
        if payload is None:
            raise BadContent(f"the payload blob {layer_digest} is missing")
        yield _Candidate(Form.LEGACY, payload, signature, payload)


# --- bundle: referrers (or the tag-schema fallback) -----------------------------------------


def _bundle_candidates(source: ArtifactSource, digest: str) -> Iterator[_Candidate]:
    index_body = source.referrers(digest)
    if index_body is None:
        index_body = source.manifest(fallback_tag(digest))
    if index_body is None:
        return
    index = json_object(index_body, "referrers index")
    entries = required(index, "manifests", list)
    bundles = [
        entry
        for entry in entries
        if isinstance(entry, dict) and entry.get("artifactType") == BUNDLE_V03
    ]
    for entry in bundles[:MAX_CANDIDATES]:
        manifest_body = source.manifest(descriptor_digest(entry))
        if manifest_body is None:
            raise BadContent("a listed bundle manifest is missing")
        manifest = json_object(manifest_body, "bundle manifest")
        subject = manifest.get("subject")
        if subject is not None and (
            not isinstance(subject, dict) or subject.get("digest") != digest
        ):
            raise BadContent("a bundle manifest's subject is another image")
        for layer in required(manifest, "layers", list)[:MAX_CANDIDATES]:
            if not isinstance(layer, dict) or layer.get("mediaType") != BUNDLE_V03:
                continue
            bundle_digest = descriptor_digest(layer)
            bundle = source.blob(bundle_digest)
            if bundle is None:
                raise BadContent(f"the bundle blob {bundle_digest} is missing")
            yield from _dsse_candidates(bundle)


def _dsse_candidates(bundle_body: bytes) -> Iterator[_Candidate]:
    bundle = json_object(bundle_body, "bundle")
    if required(bundle, "mediaType", str) != BUNDLE_V03:
        raise BadContent("the bundle is not a v0.3 sigstore bundle")
    envelope = required(bundle, "dsseEnvelope", dict)
    payload_type = required(envelope, "payloadType", str)
    if payload_type != IN_TOTO_PAYLOAD:
        raise BadContent(f"the DSSE payloadType is {payload_type[:80]!r}, not in-toto")
    payload = base64_field(required(envelope, "payload", str), "DSSE payload")
    signed = pae(payload_type.encode(), payload)
    for entry in required(envelope, "signatures", list)[:MAX_CANDIDATES]:
        if not isinstance(entry, dict):
            raise BadContent("a DSSE signature is not an object")
        yield _Candidate(
            Form.BUNDLE,
            signed,
            base64_field(required(entry, "sig", str), "DSSE signature"),
            payload,
        )


def pae(payload_type: bytes, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature actually signs."""
    return b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type, len(payload), payload)


# --- hostile-content helpers ----------------------------------------------------------------
