"""A throwaway certificate authority for loopback TLS: the local control plane and webhook tests.

kube-apiserver insists on TLS for its own port, for client certificates and for every admission
webhook it calls, so local runs need a small PKI. Keys are ECDSA P-256 (fast to generate, accepted
everywhere Kubernetes checks a certificate) and live only as long as the run that made them.
Never use this for a real cluster.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mamori_operator.certificates.plan import general_name, key_usage

VALIDITY = datetime.timedelta(days=7)
CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key (PKCS#8, unencrypted)."""

    certificate_pem: bytes
    key_pem: bytes

    def write(self, *, certificate: Path, key: Path) -> None:
        """Write both files; the key readable by the owner only."""
        certificate.write_bytes(self.certificate_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem)


class LocalCA:
    """Issues serving and client certificates signed by one self-signed root."""

    def __init__(self, common_name: str = "mamori-local-ca") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        self._name = name
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def certificate_pem(self) -> bytes:
        """The root certificate: a caBundle, a --client-ca-file, a kubeconfig's CA data."""
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server(
        self, common_name: str, *, hosts: Sequence[str] = ("127.0.0.1", "localhost")
    ) -> KeyPair:
        """A serving certificate whose SANs are ``hosts`` (IP literals become IP SANs)."""
        return self._issue(
            common_name, organizations=(), hosts=hosts, usage=ExtendedKeyUsageOID.SERVER_AUTH
        )

    def issue_client(self, user: str, *, groups: Sequence[str] = ()) -> KeyPair:
        """A client certificate: Kubernetes reads the user from CN and the groups from O."""
        return self._issue(
            user, organizations=groups, hosts=(), usage=ExtendedKeyUsageOID.CLIENT_AUTH
        )

    def _issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str],
        hosts: Sequence[str],
        usage: x509.ObjectIdentifier,
    ) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([general_name(host) for host in hosts]),
                critical=False,
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        return KeyPair(
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=_private_pem(key),
        )


@dataclass(frozen=True)
class SigningKey:
    """A bare key pair, as PEM: kube-apiserver signs service-account tokens with it."""

    public_pem: bytes
    private_pem: bytes


def generate_signing_key() -> SigningKey:
    """A fresh ECDSA key pair for ``--service-account-signing-key-file`` (ES256 tokens)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(public_pem=public, private_pem=_private_pem(key))


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
