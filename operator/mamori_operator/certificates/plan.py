"""The webhook's certificates: a private CA, the serving pair it signs, and when to renew which.

kube-apiserver calls an admission webhook over TLS and trusts only the CAs in the webhook
configuration's ``caBundle``, so mamori looks after three things: a CA (kept where only the
operator reads it), a serving certificate for the webhook Service's DNS names, and the bundle.
This module decides; it does no I/O. :func:`plan` takes what is stored now and the time, and
returns what should be stored next, one safe step at a time, so a caller that stops half way
(an operator restarting, a leader changing) simply continues from what it finds.

Replacing the CA is the delicate part: a webhook pod may still serve a pair signed by the old CA
while the API server already has the new bundle, or the other way round. So a new CA is first
*added* to the bundle next to the old one; only after ``overlap`` does the serving pair switch
to the new CA; and only ``overlap`` after that switch is the old CA dropped. At every moment the
pair any webhook pod serves is signed by a CA in the bundle the API server uses.

When a step is due is read from the certificates themselves (``issued_at``), not from separate
bookkeeping that could disagree with them.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates are back-dated a little, so a node whose clock runs behind still accepts them.
BACKDATE = datetime.timedelta(minutes=5)
CA_COMMON_NAME = "mamori-webhook-ca"
SERVING_COMMON_NAME = "mamori-webhook"


class CertificateConfigError(ValueError):
    """Lifetimes that cannot work together; the message says which and why."""


@dataclass(frozen=True, kw_only=True)
class Lifetimes:
    """How long certificates live and how early each is replaced."""

    ca_validity: datetime.timedelta = datetime.timedelta(days=1825)
    ca_renew_before: datetime.timedelta = datetime.timedelta(days=365)
    serving_validity: datetime.timedelta = datetime.timedelta(days=90)
    serving_renew_before: datetime.timedelta = datetime.timedelta(days=30)
    overlap: datetime.timedelta = datetime.timedelta(minutes=15)

    def validate(self) -> None:
        """Refuse lifetimes under which a renewal would be due before it could complete."""
        zero = datetime.timedelta(0)
        if min(self.ca_validity, self.serving_validity, self.overlap) <= zero:
            raise CertificateConfigError("validities and the overlap must be greater than 0")
        if not zero < self.serving_renew_before < self.serving_validity:
            raise CertificateConfigError(
                "the serving certificate's renew-before must be between 0 and its validity"
            )
        if not zero < self.ca_renew_before < self.ca_validity:
            raise CertificateConfigError("the CA's renew-before must be between 0 and its validity")
        if self.ca_renew_before <= 2 * self.overlap + self.serving_renew_before:
            raise CertificateConfigError(
                "the CA's renew-before must exceed two overlaps plus the serving certificate's "
                "renew-before, or the old CA could expire before the rotation completes"
            )


@dataclass(frozen=True)
class ServingPair:
    """A certificate and its private key (PEM in, PEM out)."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def certificate_pem(self) -> bytes:
        return certificate_pem(self.certificate)

    @property
    def key_pem(self) -> bytes:
        return private_key_pem(self.key)

    @property
    def issued_at(self) -> datetime.datetime:
        return issued_at(self.certificate)

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    def matches_key(self) -> bool:
        """True when the key is the certificate's own (a half-written Secret is not)."""
        return public_key_bytes(self.certificate.public_key()) == public_key_bytes(
            self.key.public_key()
        )

    def hosts(self) -> frozenset[str]:
        """The DNS names and IP addresses the certificate is valid for."""
        try:
            names = self.certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value
        except x509.ExtensionNotFound:
            return frozenset()
        dns = names.get_values_for_type(x509.DNSName)
        ips = [str(address) for address in names.get_values_for_type(x509.IPAddress)]
        return frozenset([*dns, *ips])


@dataclass(frozen=True)
class Authority(ServingPair):
    """A CA: a self-signed certificate whose key signs serving certificates."""

    @classmethod
    def create(cls, *, now: datetime.datetime, validity: datetime.timedelta) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    def issue(
        self, hosts: Sequence[str], *, now: datetime.datetime, validity: datetime.timedelta
    ) -> ServingPair:
        """A serving certificate for ``hosts``, never outliving this CA."""
        if not hosts:
            raise CertificateConfigError("a serving certificate needs at least one host name")
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = min(now + validity, self.not_after)
        certificate = (
            x509.CertificateBuilder()
            # Clients match the SANs below; the CN is only a label (and DNS names can exceed
            # the 64 characters a CN may hold).
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVING_COMMON_NAME)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([general_name(host) for host in hosts]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return ServingPair(certificate, key)

    def signed(self, certificate: x509.Certificate) -> bool:
        return signed_by(certificate, self.certificate)


@dataclass(frozen=True)
class CertificateState:
    """Everything stored: the CA, the CA being retired (if any), the served pair."""

    authority: Authority | None = None
    previous_ca: x509.Certificate | None = None
    serving: ServingPair | None = None
    # CAs the API server was last given (the published bundle): used only to keep trusting the
    # CA of a still-valid served pair when the stored CA itself was lost.
    published: tuple[x509.Certificate, ...] = field(default=(), compare=False)

    @property
    def ca_bundle(self) -> bytes:
        """The PEM bundle for ``caBundle``: the current CA, then the one being retired."""
        certificates = [c for c in (self._current_ca, self.previous_ca) if c is not None]
        return b"".join(certificate_pem(c) for c in certificates)

    @property
    def _current_ca(self) -> x509.Certificate | None:
        return self.authority.certificate if self.authority is not None else None


@dataclass(frozen=True)
class Plan:
    """The state to store next, and why it differs from what is stored (empty: nothing to do)."""

    state: CertificateState
    reasons: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


def plan(
    current: CertificateState,
    *,
    hosts: Sequence[str],
    now: datetime.datetime,
    lifetimes: Lifetimes,
) -> Plan:
    """The next safe step from ``current`` towards: a valid CA, a valid pair, a minimal bundle."""
    reasons: list[str] = []
    authority, previous, serving = current.authority, current.previous_ca, current.serving
    if serving is not None and not serving.matches_key():
        reasons.append("the stored serving key does not match its certificate")
        serving = None
    if previous is not None and previous.not_valid_after_utc <= now:
        reasons.append("the retired CA has expired")
        previous = None

    rotating = previous is not None
    if authority is None or (
        not rotating and now >= authority.not_after - lifetimes.ca_renew_before
    ):
        reasons.append("no CA is stored" if authority is None else "the CA is due for renewal")
        old = authority.certificate if authority is not None else None
        authority = Authority.create(now=now, validity=lifetimes.ca_validity)
        previous = _ca_to_keep(serving, candidates=[old, previous, *current.published], now=now)

    def issue() -> ServingPair:
        return authority.issue(hosts, now=now, validity=lifetimes.serving_validity)

    if serving is None:
        reasons.append("no serving certificate is stored")
        serving = issue()
    elif not authority.signed(serving.certificate):
        if previous is None or not signed_by(serving.certificate, previous):
            reasons.append("the served certificate is not signed by a trusted CA")
            serving = issue()
        elif now >= authority.issued_at + lifetimes.overlap:
            reasons.append("the new CA has been trusted for an overlap: switching the serving pair")
            serving = issue()
        elif now >= serving.not_after - lifetimes.overlap:
            reasons.append("the serving certificate expires before the overlap ends")
            serving = issue()
    elif now >= serving.not_after - lifetimes.serving_renew_before:
        reasons.append("the serving certificate is due for renewal")
        serving = issue()
    elif serving.hosts() != frozenset(hosts):
        reasons.append("the serving certificate's host names changed")
        serving = issue()

    if (
        previous is not None
        and authority.signed(serving.certificate)
        and now >= serving.issued_at + lifetimes.overlap
    ):
        reasons.append("the serving pair has used the new CA for an overlap: retiring the old CA")
        previous = None

    return Plan(CertificateState(authority, previous, serving, current.published), tuple(reasons))


def service_hosts(service: str, namespace: str) -> tuple[str, ...]:
    """The names kube-apiserver may use for a webhook Service (it dials ``svc.ns.svc``)."""
    return (f"{service}.{namespace}.svc", f"{service}.{namespace}", service)


# -- reading what is stored -------------------------------------------------------------------


def load_state(
    *,
    ca_certificate: bytes | None,
    ca_key: bytes | None,
    previous_ca: bytes | None,
    serving_certificate: bytes | None,
    serving_key: bytes | None,
    published_bundle: bytes | None = None,
) -> CertificateState:
    """Parse what is stored; anything missing or unreadable becomes None (and gets replaced)."""
    authority_pair = _pair(ca_certificate, ca_key)
    authority = (
        Authority(authority_pair.certificate, authority_pair.key) if authority_pair else None
    )
    if authority is not None and not (authority.matches_key() and _is_ca(authority.certificate)):
        authority = None
    previous = _first_certificate(previous_ca)
    return CertificateState(
        authority=authority,
        previous_ca=previous,
        serving=_pair(serving_certificate, serving_key),
        published=tuple(certificates_from_pem(published_bundle or b"")),
    )


def certificates_from_pem(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; an unreadable bundle yields none."""
    try:
        return x509.load_pem_x509_certificates(data) if data.strip() else []
    except ValueError:
        return []


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_bytes(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def issued_at(certificate: x509.Certificate) -> datetime.datetime:
    """When mamori made the certificate (it back-dates ``notBefore`` by :data:`BACKDATE`)."""
    return certificate.not_valid_before_utc + BACKDATE


def signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key signed ``certificate`` (names and signature both checked)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _ca_to_keep(
    serving: ServingPair | None,
    *,
    candidates: Iterable[x509.Certificate | None],
    now: datetime.datetime,
) -> x509.Certificate | None:
    """The CA that signed the pair being served, while that pair is still valid."""
    if serving is None or serving.not_after <= now:
        return None
    for candidate in candidates:
        if (
            candidate is not None
            and candidate.not_valid_after_utc > now
            and signed_by(serving.certificate, candidate)
        ):
            return candidate
    return None


def _pair(certificate_data: bytes | None, key_data: bytes | None) -> ServingPair | None:
    certificate = _first_certificate(certificate_data)
    if certificate is None or not key_data:
        return None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return ServingPair(certificate, key)


def _first_certificate(data: bytes | None) -> x509.Certificate | None:
    certificates = certificates_from_pem(data or b"")
    return certificates[0] if certificates else None


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signing only; a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def general_name(host: str) -> x509.GeneralName:
    """A SAN entry: an IP literal as an IP address, anything else as a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
