"""cosign key-pair signatures, made by the real cosign CLI, verified by mamori in Python.

The registry is the real one of registry_support.py (TLS, htpasswd); cosign signs with fresh
keys in both the legacy ``.sig`` form and the bundle form cosign v3 writes by default, and the
verdicts come from mamori.supplychain.cosign reading the registry through RegistryClient.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mamori.images import parse_reference
from mamori.supplychain.artifacts import RepositorySource
from mamori.supplychain.cosign import (
    PublicKey,
    load_public_keys,
    verify_image,
)
from mamori.supplychain.registry import (
    Credentials,
    RegistryClient,
    RegistryClientConfig,
    RegistryProtocolError,
    ResponseTooLarge,
)
from mamori.supplychain.verdicts import (
    Form,
    NotSigned,
    UnknownKey,
    Verdict,
    Verified,
)
from tests.integration.registry_support import (
    TestRegistry,
    running_registry,
    write_loopback_certificate,
)

pytestmark = pytest.mark.integration

REPOSITORY = "demo/signed"
PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def keys(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two cosign key pairs: ``ours`` (configured) and ``theirs`` (not)."""
    base = tmp_path_factory.mktemp("keys")
    return {name: registry.cosign_key_pair(base / name, PASSWORD) for name in ("ours", "theirs")}


def configured(keys: dict[str, Path]) -> tuple[PublicKey, ...]:
    return load_public_keys([keys["ours"].read_bytes()])


def sign_legacy(registry: TestRegistry, key_dir: Path, image: str) -> None:
    registry.cosign(
        "sign",
        "--key",
        "cosign.key",
        "--new-bundle-format=false",
        "--use-signing-config=false",
        "--tlog-upload=false",
        "--yes",
        image,
        cwd=key_dir,
        password=PASSWORD,
    )


def sign_bundle(registry: TestRegistry, key_dir: Path, image: str) -> None:
    config = key_dir / "signing-config.json"
    if not config.exists():
        registry.cosign("signing-config", "create", "--out", str(config), cwd=key_dir)
    registry.cosign(
        "sign",
        "--key",
        "cosign.key",
        "--signing-config",
        str(config),
        "--yes",
        image,
        cwd=key_dir,
        password=PASSWORD,
    )


def verdict(registry: TestRegistry, keys: tuple[PublicKey, ...], tag: str) -> Verdict:
    """Resolve ``tag`` now, and judge the digest it points to."""
    client = RegistryClient(
        RegistryClientConfig(ssl_context=registry.ssl_context(), deadline=5.0, cache_ttl=0)
    )
    reference = parse_reference(f"{registry.address}/{REPOSITORY}:{tag}")
    credentials = Credentials(registry.username, registry.password)
    digest = client.resolve(reference, credentials=credentials).digest
    source = RepositorySource(client, reference, credentials)
    return verify_image(source, digest, keys)


def test_a_legacy_signature_by_our_key_verifies(
    registry: TestRegistry, keys: dict[str, Path]
) -> None:
    digest = registry.push_image(REPOSITORY, "legacy", "signed the old way")
    sign_legacy(registry, keys["ours"].parent, f"{registry.address}/{REPOSITORY}@{digest}")
    result = verdict(registry, configured(keys), "legacy")
    assert isinstance(result, Verified) and result.form is Form.LEGACY


def test_a_bundle_signature_by_our_key_verifies(
    registry: TestRegistry, keys: dict[str, Path]
) -> None:
    digest = registry.push_image(REPOSITORY, "bundle", "signed the cosign v3 way")
    sign_bundle(registry, keys["ours"].parent, f"{registry.address}/{REPOSITORY}@{digest}")
    result = verdict(registry, configured(keys), "bundle")
    assert isinstance(result, Verified) and result.form is Form.BUNDLE


def test_an_unsigned_image_is_not_signed(registry: TestRegistry, keys: dict[str, Path]) -> None:
    registry.push_image(REPOSITORY, "unsigned", "nobody signed this")
    assert verdict(registry, configured(keys), "unsigned") == NotSigned()


SIGNERS = {"legacy": sign_legacy, "bundle": sign_bundle}


@pytest.mark.parametrize("form", SIGNERS)
def test_a_signature_by_another_key_is_an_unknown_key(
    registry: TestRegistry, keys: dict[str, Path], form: str
) -> None:
    tag = f"theirs-{form}"
    digest = registry.push_image(REPOSITORY, tag, f"signed by someone else ({tag})")
    SIGNERS[form](registry, keys["theirs"].parent, f"{registry.address}/{REPOSITORY}@{digest}")
    result = verdict(registry, configured(keys), tag)
    assert isinstance(result, UnknownKey) and result.forms == (Form[form.upper()],)


def test_a_tag_moved_to_an_unsigned_digest_is_not_signed(
    registry: TestRegistry, keys: dict[str, Path]
) -> None:
    signed = registry.push_image(REPOSITORY, "moving", "signed, then replaced")
    sign_bundle(registry, keys["ours"].parent, f"{registry.address}/{REPOSITORY}@{signed}")
    sign_legacy(registry, keys["ours"].parent, f"{registry.address}/{REPOSITORY}@{signed}")
    assert isinstance(verdict(registry, configured(keys), "moving"), Verified)
    unsigned = registry.push_image(REPOSITORY, "moving", "the replacement, never signed")
    assert unsigned != signed
    assert verdict(registry, configured(keys), "moving") == NotSigned()


# --- a registry that lies: the fetches check what they are given ---------------------------

SMALL = b'{"schemaVersion": 2, "layers": []}'
SMALL_DIGEST = "sha256:" + hashlib.sha256(SMALL).hexdigest()
OTHER_DIGEST = "sha256:" + "c" * 64
SIZE_BOUND = 4096


class LyingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with SMALL; /huge with more than the size bound; /liar tags claim
    another digest in Docker-Content-Digest. HTTP/1.1 (kept alive), as real registries answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"x" * (SIZE_BOUND * 4) if "/huge" in self.path else SMALL
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Content-Length", str(len(body)))
        claimed = OTHER_DIGEST if "/liar" in self.path else SMALL_DIGEST
        self.send_header("Docker-Content-Digest", claimed)
        self.end_headers()
        self.wfile.write(body)


class ClosingHandler(LyingHandler):
    """The same answers over HTTP/1.0: the server closes the connection after each one, so the
    client reads the body after http.client has let go of the connection."""

    protocol_version = "HTTP/1.0"


@pytest.fixture
def lying_client(tmp_path: Path) -> Iterator[tuple[RegistryClient, str]]:
    with serving(LyingHandler, tmp_path) as served:
        yield served


@contextlib.contextmanager
def serving(
    handler: type[http.server.BaseHTTPRequestHandler], tmp_path: Path
) -> Iterator[tuple[RegistryClient, str]]:
    cert, key = write_loopback_certificate(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = RegistryClient(
            RegistryClientConfig(
                ssl_context=ssl.create_default_context(cafile=str(cert)),
                deadline=5.0,
                max_response_bytes=SIZE_BOUND,
            )
        )
        yield client, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_content_is_checked_against_the_digest_asked_for(
    lying_client: tuple[RegistryClient, str],
) -> None:
    client, address = lying_client
    reference = parse_reference(f"{address}/demo/app:v1")
    assert client.get_blob(reference, SMALL_DIGEST) is not None
    assert client.get_manifest(reference, SMALL_DIGEST) is not None
    with pytest.raises(RegistryProtocolError, match="does not hash"):
        client.get_blob(reference, OTHER_DIGEST)
    with pytest.raises(RegistryProtocolError, match="does not hash"):
        client.get_manifest(reference, OTHER_DIGEST)
    for bad in ("../blobs/x", "v1?n=1", "sha256:zz"):
        with pytest.raises(RegistryProtocolError, match="is not a"):
            client.get_manifest(reference, bad)
    with pytest.raises(RegistryProtocolError, match="is not a digest"):
        client.get_referrers(reference, "sha256:../../x")
    with pytest.raises(RegistryProtocolError, match="is not a digest"):
        client.get_blob(reference, "latest")
    liar = parse_reference(f"{address}/demo/liar:v1")
    with pytest.raises(RegistryProtocolError, match="does not hash"):
        client.get_manifest(liar, "v1")


def test_a_fetch_past_the_size_bound_is_refused_and_verification_does_not_decide(
    lying_client: tuple[RegistryClient, str], tmp_path: Path
) -> None:
    client, address = lying_client
    reference = parse_reference(f"{address}/demo/huge:v1")
    with pytest.raises(ResponseTooLarge):
        client.get_blob(reference, SMALL_DIGEST)
    keys = load_public_keys([_any_public_key_pem()])
    with pytest.raises(ResponseTooLarge):
        verify_image(RepositorySource(client, reference), SMALL_DIGEST, keys)


def _any_public_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_body_is_read_when_the_server_closes_the_connection_after_answering(
    tmp_path: Path,
) -> None:
    with serving(ClosingHandler, tmp_path) as (client, address):
        reference = parse_reference(f"{address}/demo/app:v1")
        fetched = client.get_blob(reference, SMALL_DIGEST)
        assert fetched is not None and fetched.body == SMALL
        with pytest.raises(ResponseTooLarge):
            client.get_blob(parse_reference(f"{address}/demo/huge:v1"), SMALL_DIGEST)
