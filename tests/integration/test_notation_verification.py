"""Notation signatures, made by the real notation CLI, verified by mamori in Python.

The registry is the real one of registry_support.py (TLS, htpasswd). notation signs with a
certificate chain made here (a root and a code-signing leaf) and with ``notation cert
generate-test`` certificates, in JWS and COSE; the verdicts come from mamori.supplychain.notation
reading the registry through RegistryClient. Where it decides, ``notation verify`` (strict) is
asked too, and must agree. distribution's registry has no referrers API (404), so signatures
are found through the ``sha256-<hex>`` tag schema index here; the referrers API path is in
tests/unit/test_notation_verify.py.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mamori.images import parse_reference
from mamori.supplychain.artifacts import RepositorySource
from mamori.supplychain.notation import (
    COSE_MEDIA_TYPE,
    JWS_MEDIA_TYPE,
    SIGNATURE_ARTIFACT,
    NotationTrust,
    load_notation_trust,
    verify_image,
)
from mamori.supplychain.registry import Credentials, RegistryClient, RegistryClientConfig
from mamori.supplychain.verdicts import Form, NotSigned, UnknownKey, Untrusted, Verdict, Verified
from tests.integration.registry_support import (
    NotationSigner,
    TestRegistry,
    running_registry,
    write_code_signing_chain,
)

pytestmark = pytest.mark.integration

REPOSITORY = "demo/notation"
LEAF_SUBJECT = "mamori build"
HOUR = datetime.timedelta(hours=1)
FORMATS = {"jws": Form.NOTATION_JWS, "cose": Form.NOTATION_COSE}


@dataclass(frozen=True)
class Signers:
    chain: NotationSigner  # leaf under a root made here: the root is trusted (entry 0)
    test: NotationSigner  # `notation cert generate-test ours`: trusted as is (entry 1)
    theirs: NotationSigner  # `notation cert generate-test theirs`: not trusted
    root: Path

    @property
    def trusted(self) -> list[Path]:
        return [self.root, self.test.certificates]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def signers(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> Signers:
    base = tmp_path_factory.mktemp("notation")
    key, chain, root = write_code_signing_chain(
        base / "pki", subject=LEAF_SUBJECT, valid_for=datetime.timedelta(days=10)
    )
    return Signers(
        chain=registry.notation_signer_from_files(base / "chain", "ours-chain", key, chain),
        test=registry.notation_test_signer(base / "test", "ours"),
        theirs=registry.notation_test_signer(base / "theirs", "theirs"),
        root=root,
    )


def trust(signers: Signers, *identities: str) -> NotationTrust:
    return load_notation_trust([path.read_bytes() for path in signers.trusted], identities)


def client_for(registry: TestRegistry) -> RegistryClient:
    config = RegistryClientConfig(ssl_context=registry.ssl_context(), deadline=5.0, cache_ttl=0)
    return RegistryClient(config)


def verdict(
    registry: TestRegistry,
    trusted: NotationTrust,
    tag: str,
    *,
    later: datetime.timedelta = datetime.timedelta(0),
) -> Verdict:
    """Resolve ``tag`` now, and judge the digest it points to at now + ``later``."""
    client = client_for(registry)
    reference = parse_reference(f"{registry.address}/{REPOSITORY}:{tag}")
    credentials = Credentials(registry.username, registry.password)
    digest = client.resolve(reference, credentials=credentials).digest
    source = RepositorySource(client, reference, credentials)
    now = datetime.datetime.now(datetime.UTC) + later
    return verify_image(source, digest, trusted, now=now)


def leaf_sha256(signer: NotationSigner) -> str:
    leaf = x509.load_pem_x509_certificates(signer.certificates.read_bytes())[0]
    return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()


def pushed(registry: TestRegistry, tag: str) -> tuple[str, str]:
    """A fresh image under ``tag``: (its digest, repository@digest for the CLIs)."""
    digest = registry.push_image(REPOSITORY, tag, f"content of {tag}")
    return digest, f"{registry.address}/{REPOSITORY}@{digest}"


@pytest.mark.parametrize("signature_format", FORMATS)
@pytest.mark.parametrize("which", ["chain", "test"])
def test_a_signature_under_a_trusted_certificate_verifies(
    registry: TestRegistry,
    signers: Signers,
    tmp_path: Path,
    which: str,
    signature_format: str,
) -> None:
    tag = f"{which}-{signature_format}"
    _, image = pushed(registry, tag)
    signer = signers.chain if which == "chain" else signers.test
    registry.notation_sign(signer, image, signature_format=signature_format)
    entry = 0 if which == "chain" else 1
    expected = Verified(entry, leaf_sha256(signer), FORMATS[signature_format])
    assert verdict(registry, trust(signers), tag) == expected
    assert registry.notation_verify(image, config_home=tmp_path, trusted=signers.trusted)


def test_an_unsigned_image_is_not_signed(registry: TestRegistry, signers: Signers) -> None:
    pushed(registry, "unsigned")
    assert verdict(registry, trust(signers), "unsigned") == NotSigned()


@pytest.mark.parametrize("signature_format", FORMATS)
def test_a_signature_under_another_root_is_an_unknown_key(
    registry: TestRegistry, signers: Signers, tmp_path: Path, signature_format: str
) -> None:
    tag = f"theirs-{signature_format}"
    _, image = pushed(registry, tag)
    registry.notation_sign(signers.theirs, image, signature_format=signature_format)
    result = verdict(registry, trust(signers), tag)
    assert result == UnknownKey((FORMATS[signature_format],))
    assert not registry.notation_verify(image, config_home=tmp_path, trusted=signers.trusted)


def test_a_tag_moved_to_an_unsigned_digest_is_not_signed(
    registry: TestRegistry, signers: Signers
) -> None:
    signed, image = pushed(registry, "moving")
    registry.notation_sign(signers.chain, image)
    registry.notation_sign(signers.test, image, signature_format="cose")
    assert isinstance(verdict(registry, trust(signers), "moving"), Verified)
    unsigned = registry.push_image(REPOSITORY, "moving", "the replacement, never signed")
    assert unsigned != signed
    assert verdict(registry, trust(signers), "moving") == NotSigned()


@pytest.mark.parametrize("signature_format", FORMATS)
def test_a_signature_altered_to_name_another_image_is_refused(
    registry: TestRegistry, signers: Signers, tmp_path: Path, signature_format: str
) -> None:
    """A valid signature of one image, its payload edited to name another and attached to
    that one: what someone with push access but not the key can do."""
    genuine, image = pushed(registry, f"genuine-{signature_format}")
    registry.notation_sign(signers.chain, image, signature_format=signature_format)
    target_tag = f"forged-{signature_format}"
    target, target_image = pushed(registry, target_tag)
    media_type, envelope = fetch_envelope(registry, genuine)
    forged = retarget(media_type, envelope, genuine, target)
    envelope_file = tmp_path / "envelope"
    envelope_file.write_bytes(forged)
    registry.oras(
        "attach",
        "--artifact-type",
        SIGNATURE_ARTIFACT,
        target_image,
        f"envelope:{media_type}",
        cwd=tmp_path,
    )
    result = verdict(registry, trust(signers), target_tag)
    assert isinstance(result, Untrusted) and "does not match its content" in result.reason
    assert not registry.notation_verify(
        target_image, config_home=tmp_path / "verify", trusted=signers.trusted
    )


@pytest.mark.parametrize("signature_format", FORMATS)
def test_the_expiry_notation_writes_is_enforced(
    registry: TestRegistry, signers: Signers, signature_format: str
) -> None:
    tag = f"expiring-{signature_format}"
    _, image = pushed(registry, tag)
    registry.notation_sign(signers.chain, image, signature_format=signature_format, expiry="1h")
    assert isinstance(verdict(registry, trust(signers), tag), Verified)
    result = verdict(registry, trust(signers), tag, later=2 * HOUR)
    assert isinstance(result, Untrusted) and "the signature expired on" in result.reason


def test_a_certificate_past_its_validity_is_refused_saying_when_it_expired(
    registry: TestRegistry, signers: Signers
) -> None:
    _, image = pushed(registry, "test-cert")
    registry.notation_sign(signers.test, image)
    not_after = x509.load_pem_x509_certificate(
        signers.test.certificates.read_bytes()
    ).not_valid_after_utc
    result = verdict(registry, trust(signers), "test-cert", later=datetime.timedelta(days=2))
    assert isinstance(result, Untrusted)
    assert f"expired on {not_after:%Y-%m-%d %H:%M:%S} UTC" in result.reason


@pytest.mark.parametrize(
    ("identity", "accepted"),
    [
        pytest.param("x509.subject: C=US, ST=WA, O=mamori tests", True, id="organization"),
        pytest.param(
            f"x509.subject: C=US, ST=WA, O=mamori tests, CN={LEAF_SUBJECT}", True, id="cn"
        ),
        pytest.param("x509.subject: C=US, ST=WA, O=mamori tests, CN=other", False, id="other-cn"),
        pytest.param("x509.subject: C=US, ST=OR, O=mamori tests", False, id="other-state"),
    ],
)
def test_trusted_identities_match_as_notation_matches_them(
    registry: TestRegistry, signers: Signers, tmp_path: Path, identity: str, accepted: bool
) -> None:
    tag = "identity"
    _, image = pushed(registry, tag)
    registry.notation_sign(signers.chain, image)
    result = verdict(registry, trust(signers, identity), tag)
    if accepted:
        assert result == Verified(0, leaf_sha256(signers.chain), Form.NOTATION_JWS)
    else:
        assert isinstance(result, Untrusted) and "trusted identities" in result.reason
    ours = registry.notation_verify(
        image, config_home=tmp_path, trusted=[signers.root], identities=[identity]
    )
    assert ours is accepted


# --- reading and forging an envelope ---------------------------------------------------------


def fetch_envelope(registry: TestRegistry, digest: str) -> tuple[str, bytes]:
    """The envelope of the one Notation signature of ``digest``, read as a verifier reads it."""
    client = client_for(registry)
    reference = parse_reference(f"{registry.address}/{REPOSITORY}@{digest}")
    source = RepositorySource(client, reference, Credentials(registry.username, registry.password))
    index = source.referrers(digest) or source.manifest(digest.replace(":", "-"))
    assert index is not None
    entries = [
        entry
        for entry in json.loads(index)["manifests"]
        if entry.get("artifactType") == SIGNATURE_ARTIFACT
    ]
    manifest = json.loads(source.manifest(entries[0]["digest"]) or b"{}")
    layer = manifest["layers"][0]
    envelope = source.blob(layer["digest"])
    assert envelope is not None
    return layer["mediaType"], envelope


def retarget(media_type: str, envelope: bytes, old: str, new: str) -> bytes:
    """The envelope with its signed payload naming ``new`` instead of ``old``."""
    if media_type == JWS_MEDIA_TYPE:
        document = json.loads(envelope)
        payload = base64.urlsafe_b64decode(document["payload"] + "==")
        edited = payload.replace(old.encode(), new.encode())
        assert edited != payload
        document["payload"] = base64.urlsafe_b64encode(edited).rstrip(b"=").decode()
        return json.dumps(document).encode()
    assert media_type == COSE_MEDIA_TYPE
    message = cbor2.loads(envelope)
    protected, unprotected, payload, signature = message.value
    edited = payload.replace(old.encode(), new.encode())
    assert edited != payload
    return cbor2.dumps(cbor2.CBORTag(18, [protected, dict(unprotected), edited, signature]))
