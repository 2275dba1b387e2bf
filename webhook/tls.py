"""The served certificate, reloaded from disk when it changes, without a restart.

Certificates for webhooks are short-lived (cert-manager, the operator) and arrive by a Secret
volume that the kubelet swaps atomically, or by a tool writing two files one after the other.
Every TLS handshake asks :meth:`CertificateReloader.context` for the context to use; that costs
reading and hashing the two small files (microseconds, next to a handshake's milliseconds):
content, not modification times, because a tool rewriting a file in place within the
filesystem's timestamp granularity would leave size and mtime unchanged. When the files change,
a new context is built; if the pair does not load (half written, key not matching the
certificate), the previous context keeps serving and the failure is logged once, until the
files change again.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

LOG = logging.getLogger("mamori.webhook.tls")


DEFAULT_IO_TIMEOUT = 10.0


class CertificateError(Exception):
    """A certificate and key that cannot be served; the message says which file and why."""


class DeadlineSSLSocket(ssl.SSLSocket):
    """A served connection whose blocking reads and writes give up after the context's timeout.

    gunicorn's threads read requests in blocking mode, and switch a kept-alive socket back to
    blocking mode (no timeout) each time it carries a new request. A client that completes the
    TLS handshake and then sends nothing, or half a request, would hold a thread forever; a few
    of them would stall the webhook, and with ``failurePolicy: Fail`` every pod creation in the
    cluster. Here "blocking" means "blocking for at most ``io_timeout`` seconds".
    """

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(getattr(self.context, "io_timeout", DEFAULT_IO_TIMEOUT))
        else:
            super().setblocking(False)


class ServingContext(ssl.SSLContext):
    """A server context whose sockets time out (see :class:`DeadlineSSLSocket`)."""

    sslsocket_class = DeadlineSSLSocket
    io_timeout = DEFAULT_IO_TIMEOUT

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        sock.settimeout(self.io_timeout)  # the handshake and first request have a deadline too
        return super().wrap_socket(sock, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class LoadedCertificate:
    context: ssl.SSLContext
    serial: int
    subject: str
    not_after: datetime.datetime


class CertificateReloader:
    """Hands out a server SSLContext (TLS 1.2 or newer) for the current certificate files."""

    def __init__(
        self, cert_file: Path, key_file: Path, *, io_timeout: float = DEFAULT_IO_TIMEOUT
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.io_timeout = io_timeout
        self._loaded: LoadedCertificate | None = None
        self._stamp: bytes | None = None
        self._reload_lock = threading.Lock()

    def load(self) -> LoadedCertificate:
        """Load the pair now; raise :class:`CertificateError` if it cannot be served."""
        stamp = self._read_stamp()
        loaded = build_context(self.cert_file, self.key_file, io_timeout=self.io_timeout)
        self._loaded, self._stamp = loaded, stamp
        log_loaded(loaded)
        return loaded

    def context(self) -> ssl.SSLContext:
        """The context for the next handshake, reloading first if the files changed."""
        try:
            stamp = self._read_stamp()
        except OSError:
            stamp = None  # mid-swap: a file is briefly missing; keep serving the old pair
        if stamp is not None and stamp != self._stamp:
            self._reload(stamp)
        if self._loaded is None:
            raise ssl.SSLError("no TLS certificate loaded")
        return self._loaded.context

    @property
    def ready(self) -> bool:
        """True while a certificate is loaded and still valid."""
        loaded = self._loaded
        return loaded is not None and loaded.not_after > datetime.datetime.now(datetime.UTC)

    @property
    def current(self) -> LoadedCertificate | None:
        return self._loaded

    def _reload(self, stamp: bytes) -> None:
        # Blocking: a handshake that arrives while another thread reloads waits the millisecond
        # it takes rather than get the old pair, whose CA the API server may no longer trust.
        with self._reload_lock:
            if stamp == self._stamp:
                return
            try:
                loaded = build_context(self.cert_file, self.key_file, io_timeout=self.io_timeout)
            except CertificateError as error:
                self._stamp = stamp  # a bad pair is reported once, not per handshake
                LOG.error("keeping the previous TLS certificate: %s", error)
                return
            # The pair first, the stamp second: a thread that sees the new stamp without taking
            # the lock must also see the new pair.
            self._loaded = loaded
            self._stamp = stamp
            log_loaded(loaded)

    def _read_stamp(self) -> bytes:
        """A digest of both files as they are now (through the kubelet's ..data symlink)."""
        digest = hashlib.sha256(self.cert_file.read_bytes())
        digest.update(b"\0")
        digest.update(self.key_file.read_bytes())
        return digest.digest()


def build_context(
    cert_file: Path, key_file: Path, *, io_timeout: float = DEFAULT_IO_TIMEOUT
) -> LoadedCertificate:
    """A server context for the pair: TLS 1.2 minimum, HTTP/1.1, Python's secure defaults."""
    try:
        pem = cert_file.read_bytes()
        certificate = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as error:
        raise CertificateError(f"{cert_file}: not a PEM certificate ({error})") from None
    context = ServingContext(ssl.PROTOCOL_TLS_SERVER)
    context.io_timeout = io_timeout
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (OSError, ssl.SSLError) as error:
        # The message of load_cert_chain never contains key material, only OpenSSL's reason.
        raise CertificateError(
            f"{cert_file} with {key_file}: cannot be served ({_reason(error)})"
        ) from None
    return LoadedCertificate(
        context=context,
        serial=certificate.serial_number,
        subject=certificate.subject.rfc4514_string(),
        not_after=certificate.not_valid_after_utc,
    )


def log_loaded(loaded: LoadedCertificate) -> None:
    LOG.info(
        "serving TLS certificate serial %x for %s, valid until %s",
        loaded.serial,
        loaded.subject,
        loaded.not_after.isoformat(),
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return str(error)
