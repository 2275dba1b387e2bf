"""The certificate reloader on its own: what each handshake gets while files change under it."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from mamori.localca import KeyPair, LocalCA
from mamori.webhook.tls import CertificateError, CertificateReloader


def serial(pair: KeyPair) -> int:
    return x509.load_pem_x509_certificate(pair.certificate_pem).serial_number


@pytest.fixture
def ca() -> LocalCA:
    return LocalCA()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "tls.crt", tmp_path / "tls.key"


def test_unchanged_files_reuse_the_context(ca: LocalCA, files: tuple[Path, Path]) -> None:
    cert, key = files
    ca.issue_server("a").write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key)
    reloader.load()
    assert reloader.context() is reloader.context()
    assert reloader.context().minimum_version is ssl.TLSVersion.TLSv1_2
    assert reloader.ready


def test_a_new_pair_is_served_from_the_next_handshake(
    ca: LocalCA, files: tuple[Path, Path]
) -> None:
    cert, key = files
    ca.issue_server("a").write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key)
    first = reloader.load()
    new = ca.issue_server("b")
    new.write(certificate=cert, key=key)
    assert reloader.context() is not first.context
    assert reloader.current is not None and reloader.current.serial == serial(new)


def test_half_written_pair_keeps_the_old_one_and_says_so_once(
    ca: LocalCA, files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = files
    old = ca.issue_server("a")
    old.write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key)
    reloader.load()
    new = ca.issue_server("b")
    key.write_bytes(new.key_pem)  # the key arrives first
    with caplog.at_level(logging.ERROR, logger="mamori.webhook.tls"):
        for _ in range(3):
            context = reloader.context()
    assert reloader.current is not None and reloader.current.serial == serial(old)
    assert (
        sum("keeping the previous TLS certificate" in r.getMessage() for r in caplog.records) == 1
    )
    assert "PRIVATE KEY" not in caplog.text
    cert.write_bytes(new.certificate_pem)  # then the certificate
    assert reloader.context() is not context
    assert reloader.current.serial == serial(new)


def test_truncated_certificate_and_missing_files_keep_the_old_one(
    ca: LocalCA, files: tuple[Path, Path]
) -> None:
    cert, key = files
    old = ca.issue_server("a")
    old.write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key)
    served = reloader.load().context
    cert.write_bytes(old.certificate_pem[:100])
    assert reloader.context() is served
    cert.unlink()
    assert reloader.context() is served


def test_initial_load_fails_with_the_file_named(ca: LocalCA, files: tuple[Path, Path]) -> None:
    cert, key = files
    ca.issue_server("a").write(certificate=cert, key=key)
    key.write_bytes(ca.issue_server("b").key_pem)
    with pytest.raises(CertificateError) as mismatch:
        CertificateReloader(cert, key).load()
    assert str(cert) in str(mismatch.value)
    cert.write_text("garbage")
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        CertificateReloader(cert, key).load()
