"""The certificate reloader on its own: what each handshake gets while files change under it."""

from __future__ import annotations

import datetime
import logging
import os
import pty
import select
import signal
import ssl
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mamori_dev.localca import KeyPair, LocalCA
from mamori_webhook.tls import CertificateError, CertificateReloader, build_context

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
DAY = datetime.timedelta(days=1)


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
    with caplog.at_level(logging.ERROR, logger="mamori_webhook.tls"):
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


# Validity and unusable keys ---------------------------------------------------------------


def pair_valid(
    not_before: datetime.datetime, not_after: datetime.datetime, *, pass_phrase: bytes = b""
) -> KeyPair:
    """A self-signed server pair with the given validity window (optionally encrypted key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mamori-webhook")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(pass_phrase)
        if pass_phrase
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return KeyPair(certificate.public_bytes(serialization.Encoding.PEM), key_pem)


class Clock:
    """The reloader's idea of now, moved by the test."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def test_not_yet_valid_certificate_is_served_but_not_ready(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = files
    pair_valid(NOW + DAY, NOW + 3 * DAY).write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key, clock=Clock(NOW))
    with caplog.at_level(logging.INFO, logger="mamori_webhook.tls"):
        reloader.load()
    assert not reloader.ready
    [warning] = messages(caplog)
    assert "is not valid yet" in warning and "not ready" in warning


def test_expired_certificate_starts_with_a_warning_and_not_ready(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = files
    pair_valid(NOW - 3 * DAY, NOW - DAY).write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key)  # the real clock: this one is expired today
    with caplog.at_level(logging.INFO, logger="mamori_webhook.tls"):
        reloader.load()
    assert not reloader.ready
    [warning] = messages(caplog)
    assert "has expired" in warning and (NOW - DAY).date().isoformat() in warning


def test_readiness_follows_the_clock_past_expiry(files: tuple[Path, Path]) -> None:
    cert, key = files
    pair_valid(NOW - DAY, NOW + DAY).write(certificate=cert, key=key)
    clock = Clock(NOW)
    reloader = CertificateReloader(cert, key, clock=clock)
    reloader.load()
    assert reloader.ready
    clock.now = NOW + DAY
    assert not reloader.ready


@pytest.mark.parametrize(
    ("window", "problem"),
    [((-3, -1), "has expired"), ((2, 5), "is not valid yet")],
    ids=["expired", "not-yet-valid"],
)
def test_invalid_replacement_keeps_the_valid_pair(
    files: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
    window: tuple[int, int],
    problem: str,
) -> None:
    cert, key = files
    good = pair_valid(NOW - DAY, NOW + DAY)
    good.write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key)
    served = reloader.load().context
    pair_valid(NOW + window[0] * DAY, NOW + window[1] * DAY).write(certificate=cert, key=key)
    with caplog.at_level(logging.WARNING, logger="mamori_webhook.tls"):
        for _ in range(3):
            assert reloader.context() is served
    assert reloader.current is not None and reloader.current.serial == serial(good)
    assert reloader.ready
    [warning] = messages(caplog)
    assert f"keeping the TLS certificate serial {serial(good):x}" in warning
    assert problem in warning


def test_future_replacement_is_served_once_it_is_valid(files: tuple[Path, Path]) -> None:
    cert, key = files
    pair_valid(NOW - DAY, NOW + 2 * DAY).write(certificate=cert, key=key)
    clock = Clock(NOW)
    reloader = CertificateReloader(cert, key, clock=clock)
    served = reloader.load().context
    later = pair_valid(NOW + DAY, NOW + 9 * DAY)
    later.write(certificate=cert, key=key)
    assert reloader.context() is served
    clock.now = NOW + DAY
    assert reloader.context() is not served
    assert reloader.current is not None and reloader.current.serial == serial(later)
    clock.now = NOW + 3 * DAY  # the first pair has expired by now; the second one is served
    assert reloader.ready


def test_expired_pair_is_replaced_by_an_expired_one_as_the_files_say(
    files: tuple[Path, Path],
) -> None:
    """Nothing valid to keep: serve what the files hold (and stay not ready)."""
    cert, key = files
    pair_valid(NOW - 5 * DAY, NOW - 4 * DAY).write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key)
    reloader.load()
    newer = pair_valid(NOW - 3 * DAY, NOW - DAY)
    newer.write(certificate=cert, key=key)
    reloader.context()
    assert reloader.current is not None and reloader.current.serial == serial(newer)
    assert not reloader.ready


def test_encrypted_key_is_refused_with_a_clear_error(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = files
    pair_valid(NOW - DAY, NOW + DAY, pass_phrase=b"secret").write(certificate=cert, key=key)
    with pytest.raises(CertificateError, match="encrypted with a pass phrase"):
        build_context(cert, key)
    good = pair_valid(NOW - DAY, NOW + DAY)
    good.write(certificate=cert, key=key)
    reloader = CertificateReloader(cert, key)
    served = reloader.load().context
    pair_valid(NOW - DAY, NOW + DAY, pass_phrase=b"secret").write(certificate=cert, key=key)
    with caplog.at_level(logging.ERROR, logger="mamori_webhook.tls"):
        assert reloader.context() is served
    assert "encrypted with a pass phrase" in caplog.text


def test_encrypted_key_never_prompts_on_a_terminal(files: tuple[Path, Path]) -> None:
    """OpenSSL asks on /dev/tty when no pass-phrase callback is given; run under a real pty."""
    cert, key = files
    pair_valid(NOW - DAY, NOW + DAY, pass_phrase=b"secret").write(certificate=cert, key=key)
    code = (
        "from pathlib import Path\n"
        "from mamori_webhook.tls import CertificateError, build_context\n"
        "try:\n"
        f"    build_context(Path({str(cert)!r}), Path({str(key)!r}))\n"
        "except CertificateError as error:\n"
        "    print('REFUSED', error, flush=True)\n"
    )
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a session whose controlling terminal is the pty
        os.execve(sys.executable, [sys.executable, "-c", code], {**os.environ})
    output = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        finished = 0
        while not finished and time.monotonic() < deadline:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if not finished:
                select.select([], [], [], 0.05)  # the child is exiting: poll, never sleep
        if not finished:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)
    text = output.decode(errors="replace")
    assert finished, f"still waiting after 30 s; the terminal shows: {text!r}"
    assert "pass phrase:" not in text.lower()
    assert "REFUSED" in text and "encrypted with a pass phrase" in text
