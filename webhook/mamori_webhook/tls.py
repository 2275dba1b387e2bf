"""The served certificate, reloaded from disk when it changes, without a restart.

Certificates for webhooks are short-lived (cert-manager, the operator) and arrive by a Secret
volume that the kubelet swaps atomically, or by a tool writing two files one after the other.
Every TLS handshake asks :meth:`CertificateReloader.context` for the context to use; that costs
reading and hashing the two small files (microseconds, next to a handshake's milliseconds):
content, not modification times, because a tool rewriting a file in place within the
filesystem's timestamp granularity would leave size and mtime unchanged. When the files change,
a new context is built; if the pair does not load (half written, key not matching the
certificate, a key encrypted with a pass phrase), the previous context keeps serving and the
failure is logged once, until the files change again. A replacement that is not valid now
(expired, or not valid yet) does not displace a pair that is: it is logged, kept aside, and
served from the first handshake at which it is valid. Readiness is true only while the served
certificate is valid, so a pod with an unusable certificate leaves the Service's endpoints.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

LOG = logging.getLogger("mamori_webhook.tls")

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CertificateError(Exception):
    """A certificate and key that cannot be served; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class LoadedCertificate:
    context: ssl.SSLContext
    serial: int
    subject: str
    not_after: datetime.datetime
    not_before: datetime.datetime

    def problem_at(self, now: datetime.datetime) -> str | None:
        """Why the certificate is not valid at ``now`` (clients would refuse it), or None."""
        if now < self.not_before:
            return f"is not valid yet (notBefore {self.not_before.isoformat()})"
        if now >= self.not_after:
            return f"has expired (notAfter {self.not_after.isoformat()})"
        return None


class CertificateReloader:
    """Hands out a server SSLContext (TLS 1.2 or newer) for the current certificate files."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._clock = clock
        self._loaded: LoadedCertificate | None = None
        self._waiting: LoadedCertificate | None = None  # newer files, served once valid
        self._stamp: bytes | None = None
        self._reload_lock = threading.Lock()

    def load(self) -> LoadedCertificate:
        """Load the pair now; raise :class:`CertificateError` if it cannot be served.

        A pair that is not valid now still loads (the operator or cert-manager may be about
        to replace it), with a warning; readiness stays false until a valid pair is served.
        """
        stamp = self._read_stamp()
        loaded = build_context(self.cert_file, self.key_file)
        self._loaded, self._stamp, self._waiting = loaded, stamp, None
        log_loaded(loaded, now=self._clock())
        return loaded

    def context(self) -> ssl.SSLContext:
        """The context for the next handshake, reloading first if the files changed."""
        try:
            stamp = self._read_stamp()
        except OSError:
            stamp = None  # mid-swap: a file is briefly missing; keep serving the old pair
        if stamp is not None and stamp != self._stamp:
            self._reload(stamp)
        elif self._waiting is not None:
            self._promote_waiting()
        if self._loaded is None:
            raise ssl.SSLError("no TLS certificate loaded")
        return self._loaded.context

    @property
    def ready(self) -> bool:
        """True while a certificate is loaded and valid now (not expired, not in the future)."""
        if self._waiting is not None:
            self._promote_waiting()
        loaded = self._loaded
        return loaded is not None and loaded.problem_at(self._clock()) is None

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
                loaded = build_context(self.cert_file, self.key_file)
            except CertificateError as error:
                self._stamp = stamp  # a bad pair is reported once, not per handshake
                self._waiting = None  # the files no longer hold it
                LOG.error("keeping the previous TLS certificate: %s", error)
                return
            now = self._clock()
            current = self._loaded
            problem = loaded.problem_at(now)
            if problem is not None and current is not None and current.problem_at(now) is None:
                # An expired or future replacement would make every handshake fail; the pair
                # in service is still good, so it stays until the new one becomes valid.
                self._waiting = loaded
                self._stamp = stamp
                LOG.warning(
                    "keeping the TLS certificate serial %x (valid until %s): the new one in %s, "
                    "serial %x, %s",
                    current.serial,
                    current.not_after.isoformat(),
                    self.cert_file,
                    loaded.serial,
                    problem,
                )
                return
            self._adopt(loaded, stamp, now=now)

    def _promote_waiting(self) -> None:
        """Serve the replacement that was not valid when it arrived, once it is."""
        waiting, now = self._waiting, self._clock()
        if waiting is None or waiting.problem_at(now) is not None:
            if waiting is not None and now >= waiting.not_after:
                self._waiting = None  # expired: it will never be served
            return
        with self._reload_lock:
            if self._waiting is waiting:
                self._adopt(waiting, self._stamp, now=now)

    def _adopt(
        self, loaded: LoadedCertificate, stamp: bytes | None, *, now: datetime.datetime
    ) -> None:
        # The pair first, the stamp second: a thread that sees the new stamp without taking
        # the lock must also see the new pair.
        self._loaded = loaded
        self._waiting = None
        self._stamp = stamp
        log_loaded(loaded, now=now)

    def _read_stamp(self) -> bytes:
        """A digest of both files as they are now (through the kubelet's ..data symlink)."""
        digest = hashlib.sha256(self.cert_file.read_bytes())
        digest.update(b"\0")
        digest.update(self.key_file.read_bytes())
        return digest.digest()


def build_context(cert_file: Path, key_file: Path) -> LoadedCertificate:
    """A server context for the pair: TLS 1.2 minimum, HTTP/1.1, Python's secure defaults."""
    try:
        pem = cert_file.read_bytes()
        certificate = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as error:
        raise CertificateError(f"{cert_file}: not a PEM certificate ({error})") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        # Without a password callback OpenSSL would ask for a pass phrase on the terminal and
        # block the server's start (or a reload) forever.
        context.load_cert_chain(
            certfile=str(cert_file), keyfile=str(key_file), password=_refuse_pass_phrase
        )
    except EncryptedKey:
        raise CertificateError(
            f"{key_file}: the private key is encrypted with a pass phrase; mamori serves "
            "unencrypted keys only (a Kubernetes TLS Secret holds one; decrypt it with "
            "`openssl pkey -in KEY -out KEY.plain`)"
        ) from None
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
        not_before=certificate.not_valid_before_utc,
    )


class EncryptedKey(Exception):
    """Raised from OpenSSL's pass-phrase callback: the key needs a pass phrase we never have."""


def _refuse_pass_phrase() -> bytes:
    raise EncryptedKey


def log_loaded(loaded: LoadedCertificate, *, now: datetime.datetime) -> None:
    LOG.info(
        "serving TLS certificate serial %x for %s, valid until %s",
        loaded.serial,
        loaded.subject,
        loaded.not_after.isoformat(),
    )
    problem = loaded.problem_at(now)
    if problem is not None:
        LOG.warning(
            "the served TLS certificate serial %x %s: the API server will refuse it and /readyz "
            "reports not ready until a valid certificate is written to the files",
            loaded.serial,
            problem,
        )


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return str(error)
