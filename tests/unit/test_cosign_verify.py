"""cosign signature verification on hand-built registry content (keys made here, no network)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mamori.supplychain.cosign import (
    BUNDLE_V03,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    load_public_keys,
    pae,
    verify_image,
)
from mamori.supplychain.verdicts import (
    Form,
    Malformed,
    NotSigned,
    UnknownKey,
    Verified,
)

IMAGE = "sha256:" + "a" * 64
OTHER_IMAGE = "sha256:" + "b" * 64


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


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


def simple_signing_payload(image: str) -> bytes:
    claim = {
        "critical": {
            "identity": {"docker-reference": "registry.example/app"},
            "image": {"docker-manifest-digest": image},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(claim).encode()


def put_legacy(
    repo: FakeRepository,
    *,
    payload: bytes,
    signature: str,
    image: str = IMAGE,
) -> None:
    repo.blobs[digest_of(payload)] = payload
    layer = {
        "mediaType": SIMPLE_SIGNING,
        "digest": digest_of(payload),
        "size": len(payload),
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }
    manifest = {"schemaVersion": 2, "layers": [layer]}
    repo.manifests[image.replace(":", "-") + ".sig"] = json.dumps(manifest).encode()


def statement(image: str) -> bytes:
    document = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "", "digest": {"sha256": image.split(":", 1)[1]}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    }
    return json.dumps(document).encode()


def bundle_for(
    key: ec.EllipticCurvePrivateKey, payload: bytes, *, signed: bytes | None = None
) -> dict[str, Any]:
    payload_type = "application/vnd.in-toto+json"
    signature = sign(key, pae(payload_type.encode(), signed if signed is not None else payload))
    return {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": "x"}},
        "dsseEnvelope": {
            "payload": b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(signature)}],
        },
    }


def put_bundle(
    repo: FakeRepository, bundle: bytes, *, image: str = IMAGE, via_referrers: bool
) -> None:
    repo.blobs[digest_of(bundle)] = bundle
    manifest = {
        "schemaVersion": 2,
        "artifactType": BUNDLE_V03,
        "layers": [{"mediaType": BUNDLE_V03, "digest": digest_of(bundle), "size": len(bundle)}],
        "subject": {"digest": image},
    }
    manifest_body = json.dumps(manifest).encode()
    repo.manifests[digest_of(manifest_body)] = manifest_body
    entry = {"digest": digest_of(manifest_body), "artifactType": BUNDLE_V03}
    index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    if via_referrers:
        repo.referrer_index = index
    else:
        repo.manifests[image.replace(":", "-")] = index


SIGNER = ec.generate_private_key(ec.SECP256R1())
STRANGER = ec.generate_private_key(ec.SECP256R1())
KEYS = load_public_keys([pem(STRANGER), pem(SIGNER)])  # the signer is the second key


def legacy(payload_image: str, key: ec.EllipticCurvePrivateKey) -> FakeRepository:
    repo = FakeRepository()
    payload = simple_signing_payload(payload_image)
    put_legacy(repo, payload=payload, signature=b64(sign(key, payload)))
    return repo


def bundled(
    payload_image: str, key: ec.EllipticCurvePrivateKey, *, via_referrers: bool
) -> FakeRepository:
    repo = FakeRepository()
    bundle = json.dumps(bundle_for(key, statement(payload_image))).encode()
    put_bundle(repo, bundle, via_referrers=via_referrers)
    return repo


def tampered_legacy() -> FakeRepository:
    repo = FakeRepository()
    payload = simple_signing_payload(IMAGE)
    signature = sign(SIGNER, payload.replace(b"cosign container", b"cosign kontainer"))
    put_legacy(repo, payload=payload, signature=b64(signature))
    return repo


def tampered_bundle() -> FakeRepository:
    repo = FakeRepository()
    payload = statement(IMAGE)
    bundle = bundle_for(SIGNER, payload, signed=payload + b" ")
    put_bundle(repo, json.dumps(bundle).encode(), via_referrers=True)
    return repo


def bundle_with(change: Callable[[dict[str, Any]], None]) -> FakeRepository:
    repo = FakeRepository()
    bundle = bundle_for(SIGNER, statement(IMAGE))
    change(bundle)
    put_bundle(repo, json.dumps(bundle).encode(), via_referrers=True)
    return repo


def replace_signature(bundle: dict[str, Any], value: object) -> None:
    bundle["dsseEnvelope"]["signatures"] = value


VERIFIED_CASES = {
    "legacy signed by the right key": (legacy(IMAGE, SIGNER), Form.LEGACY),
    "bundle via the referrers API": (bundled(IMAGE, SIGNER, via_referrers=True), Form.BUNDLE),
    "bundle via the tag-schema fallback": (
        bundled(IMAGE, SIGNER, via_referrers=False),
        Form.BUNDLE,
    ),
}


@pytest.mark.parametrize("name", VERIFIED_CASES)
def test_a_signature_by_a_configured_key_verifies(name: str) -> None:
    repo, form = VERIFIED_CASES[name]
    verdict = verify_image(repo, IMAGE, KEYS)
    assert verdict == Verified(1, KEYS[1].key_id, form)


REFUSED_CASES: dict[str, tuple[FakeRepository, type]] = {
    "nothing stored": (FakeRepository(), NotSigned),
    "legacy by another key": (legacy(IMAGE, ec.generate_private_key(ec.SECP256R1())), UnknownKey),
    "bundle by another key": (
        bundled(IMAGE, ec.generate_private_key(ec.SECP256R1()), via_referrers=True),
        UnknownKey,
    ),
    "legacy payload names another image": (legacy(OTHER_IMAGE, SIGNER), Malformed),
    "bundle subject is another image": (
        bundled(OTHER_IMAGE, SIGNER, via_referrers=False),
        Malformed,
    ),
    "legacy payload tampered": (tampered_legacy(), UnknownKey),
    "bundle payload tampered": (tampered_bundle(), UnknownKey),
}


@pytest.mark.parametrize("name", REFUSED_CASES)
def test_anything_else_is_refused_with_its_reason(name: str) -> None:
    repo, verdict_type = REFUSED_CASES[name]
    assert type(verify_image(repo, IMAGE, KEYS)) is verdict_type


def broken_legacy_manifest(body: bytes) -> FakeRepository:
    repo = FakeRepository()
    repo.manifests[IMAGE.replace(":", "-") + ".sig"] = body
    return repo


def legacy_with(payload: bytes, signature: str) -> FakeRepository:
    repo = FakeRepository()
    put_legacy(repo, payload=payload, signature=signature)
    return repo


MALFORMED_CASES = {
    "legacy manifest is not JSON": broken_legacy_manifest(b"{not json"),
    "legacy manifest is a list": broken_legacy_manifest(b"[1, 2]"),
    "legacy layers is a string": broken_legacy_manifest(b'{"layers": "x"}'),
    "legacy signature is not base64": legacy_with(simple_signing_payload(IMAGE), "!!%%"),
    "legacy signature is a number": broken_legacy_manifest(
        json.dumps(
            {
                "layers": [
                    {
                        "mediaType": SIMPLE_SIGNING,
                        "digest": IMAGE,
                        "annotations": {SIGNATURE_ANNOTATION: 7},
                    }
                ]
            }
        ).encode()
    ),
    "legacy payload blob missing": broken_legacy_manifest(
        json.dumps(
            {
                "layers": [
                    {
                        "mediaType": SIMPLE_SIGNING,
                        "digest": IMAGE,
                        "annotations": {SIGNATURE_ANNOTATION: "AAAA"},
                    }
                ]
            }
        ).encode()
    ),
    "legacy payload signed but not JSON": legacy_with(b"\xff\xfe", b64(sign(SIGNER, b"\xff\xfe"))),
    "bundle signatures not a list": bundle_with(lambda b: replace_signature(b, "sig")),
    "bundle signature not base64": bundle_with(lambda b: replace_signature(b, [{"sig": "@@"}])),
    "bundle payload not base64": bundle_with(lambda b: b["dsseEnvelope"].update(payload="%%")),
    "bundle payloadType is not in-toto": bundle_with(
        lambda b: b["dsseEnvelope"].update(payloadType="text/plain")
    ),
    "bundle media type is unknown": bundle_with(lambda b: b.update(mediaType="x")),
    "referrers index is not JSON": FakeRepository(referrer_index=b"\x00\x01"),
    "referrers entry with a bad digest": FakeRepository(
        referrer_index=json.dumps(
            {"manifests": [{"artifactType": BUNDLE_V03, "digest": "sha256:zz"}]}
        ).encode()
    ),
    "deeply nested JSON": broken_legacy_manifest(b"[" * 100_000 + b"]" * 100_000),
}


@pytest.mark.parametrize("name", MALFORMED_CASES)
def test_hostile_content_is_malformed_not_a_crash(name: str) -> None:
    verdict = verify_image(MALFORMED_CASES[name], IMAGE, KEYS)
    assert isinstance(verdict, Malformed), verdict
    assert verdict.reason


def test_a_valid_signature_wins_over_junk_beside_it() -> None:
    repo = bundled(IMAGE, SIGNER, via_referrers=True)
    repo.manifests[IMAGE.replace(":", "-") + ".sig"] = b"{not json"
    assert isinstance(verify_image(repo, IMAGE, KEYS), Verified)


def test_the_judged_digest_must_be_a_sha256_digest() -> None:
    assert isinstance(verify_image(FakeRepository(), "latest", KEYS), Malformed)


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()).public_key(),
    ],
)
def test_only_p256_keys_are_accepted(key: ec.EllipticCurvePublicKey) -> None:
    text = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="P-256"):
        load_public_keys([text])
