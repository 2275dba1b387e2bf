"""Two things a real registry fleet needs that the test registry never shows on its own.

Blob redirects: Amazon ECR (and any registry that keeps blobs in object storage) answers a blob
GET with a redirect to a storage URL; signatures are read from blobs, so without following it
no signature on ECR could be checked. One hop is followed, to https only, without the registry
credentials, and the blob is still checked against its digest.

The per-review budget: a review's registry calls together stop at its budget, however many
images and requests a review needs, because every call's deadline is capped by what is left.

Servers here are loopback sockets opened by the tests (TLS with a throwaway certificate) and
closed by them.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mamori.images import RegistryPattern, parse_reference
from mamori.supplychain.cosign import load_public_keys
from mamori.supplychain.live import EvidenceConfig, RegistryEvidence
from mamori.supplychain.registry import (
    Credentials,
    RegistryClient,
    RegistryClientConfig,
    RegistryProtocolError,
)
from mamori.supplychain.requirements import SignatureRequirement
from tests.integration.registry_support import write_loopback_certificate

pytestmark = pytest.mark.integration

BLOB = b'{"critical": {"image": {"docker-manifest-digest": "sha256:..."}}}'
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
ROBOT = Credentials("robot", "s3cret")


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers by the server's ``answers``: path → (status, headers, body); notes each request."""

    server: RecordingServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.server.delay:
            time.sleep(self.server.delay)  # a slow registry: each answer takes this long
        status, headers, body = self.server.answers.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


class RecordingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), Recorder)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, str | None]] = []
        self.delay = 0.0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_port}"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return write_loopback_certificate(tmp_path)


@contextmanager
def serving(context: ssl.SSLContext | None) -> Iterator[RecordingServer]:
    server = RecordingServer(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def client(certificate: tuple[Path, Path], *, deadline: float = 2.0) -> RegistryClient:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    return RegistryClient(RegistryClientConfig(ssl_context=context, deadline=deadline))


def test_a_blob_redirect_to_https_is_followed_without_the_credentials(
    certificate: tuple[Path, Path],
) -> None:
    tls = server_context(certificate)
    with serving(tls) as registry, serving(tls) as storage:
        blob_path = f"/v2/team/app/blobs/{BLOB_DIGEST}"
        signed_url = f"https://{storage.address}/bucket/blob?X-Amz-Signature=abc"
        registry.answers[blob_path] = (307, {"Location": signed_url}, b"")
        storage.answers["/bucket/blob?X-Amz-Signature=abc"] = (200, {}, BLOB)
        reference = parse_reference(f"{registry.address}/team/app:1")
        fetched = client(certificate).get_blob(reference, BLOB_DIGEST, credentials=ROBOT)
    assert fetched is not None and fetched.body == BLOB and fetched.digest == BLOB_DIGEST
    assert storage.seen == [("/bucket/blob?X-Amz-Signature=abc", None)]  # no credentials


REFUSED_REDIRECTS = [
    ("to plain http", "http://{storage}/bucket/blob", BLOB, "not https"),
    ("to content of another digest", "https://{storage}/bucket/blob", b"tampered", "hash"),
    ("twice", "https://{storage}/again", BLOB, "HTTP 307"),
]


@pytest.mark.parametrize(
    ("case", "location", "served", "says"), REFUSED_REDIRECTS, ids=[c[0] for c in REFUSED_REDIRECTS]
)
def test_a_blob_redirect_that_cannot_be_trusted_is_refused(
    certificate: tuple[Path, Path], case: str, location: str, served: bytes, says: str
) -> None:
    tls = server_context(certificate)
    with serving(tls) as registry, serving(tls) as storage:
        registry.answers[f"/v2/team/app/blobs/{BLOB_DIGEST}"] = (
            307,
            {"Location": location.format(storage=storage.address)},
            b"",
        )
        storage.answers["/bucket/blob"] = (200, {}, served)
        storage.answers["/again"] = (
            307,
            {"Location": f"https://{storage.address}/bucket/blob"},
            b"",
        )
        reference = parse_reference(f"{registry.address}/team/app:1")
        with pytest.raises(RegistryProtocolError) as refused:
            client(certificate).get_blob(reference, BLOB_DIGEST, credentials=ROBOT)
    assert says in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_a_manifest_redirect_is_still_refused(certificate: tuple[Path, Path]) -> None:
    tls = server_context(certificate)
    with serving(tls) as registry:
        registry.answers["/v2/team/app/manifests/1"] = (
            307,
            {"Location": f"https://{registry.address}/elsewhere"},
            b"",
        )
        reference = parse_reference(f"{registry.address}/team/app:1")
        with pytest.raises(RegistryProtocolError, match="redirects are refused"):
            client(certificate).get_manifest(reference, "1")


BUDGET = 0.6
CALL_DEADLINE = 0.5
SLACK = 0.3  # scheduling on a busy 2-core machine


def test_a_review_of_many_images_on_a_hung_registry_stops_at_its_budget(
    certificate: tuple[Path, Path],
) -> None:
    """Three tags on a registry that never answers: each call alone may take 0.5 s, but the
    review together stops at its 0.6 s budget (before the cap: 1.0 s, two whole calls)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        evidence = RegistryEvidence(
            client(certificate, deadline=CALL_DEADLINE), EvidenceConfig(budget=BUDGET)
        )
        lookup = evidence.for_request()
        started = time.monotonic()
        answers = [
            lookup.digest(parse_reference(f"127.0.0.1:{port}/team/app{n}:1")) for n in range(3)
        ]
        took = time.monotonic() - started
    assert all(answer.digest is None for answer in answers)
    assert "did not answer within the deadline" in answers[0].problem
    assert "used up" in answers[-1].problem or "did not answer" in answers[-1].problem
    assert took < BUDGET + SLACK, f"{took:.2f}s for a {BUDGET}s budget"


SLOW = 0.25  # seconds the slow registry takes for every answer


def test_a_pods_images_are_asked_about_at_once_not_one_after_another(
    certificate: tuple[Path, Path],
) -> None:
    """Four unsigned images on a registry that takes 0.25 s per answer, three answers each
    (the .sig tag, the referrers API, the tag-schema index: all 404): in turn that is 3 s; asked
    at once (the rule's prefetch), about the time of one image."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with serving(server_context(certificate)) as registry:
        registry.delay = SLOW
        requirement = SignatureRequirement(
            index=0,
            images=(RegistryPattern.parse(registry.address),),
            cosign_keys=load_public_keys([pem]),
        )
        evidence = RegistryEvidence(client(certificate), EvidenceConfig(budget=10.0))
        lookup = evidence.for_request()
        digests = [f"sha256:{n:064x}" for n in range(4)]
        references = [
            parse_reference(f"{registry.address}/team/app{n}@{d}") for n, d in enumerate(digests)
        ]
        started = time.monotonic()
        lookup.prefetch([(reference, (requirement,)) for reference in references])
        answers = [
            lookup.signature(reference, digest, requirement)
            for reference, digest in zip(references, digests, strict=True)
        ]
        took = time.monotonic() - started
        asked = len(registry.seen)
    assert [answer.detail for answer in answers] == ["no cosign signature found"] * 4
    assert asked == 12  # each question once: the rule's own pass found every answer kept
    assert took < 6 * SLOW, f"{took:.2f}s: the images were asked about one after another"
