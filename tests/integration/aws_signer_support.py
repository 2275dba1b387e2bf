"""Signatures shaped like AWS Signer's, made by the real notation CLI, for the AWS Signer tests.

AWS Signer's plugin has notation hand it the payload and gets back a whole envelope made by the
service. Here the plugin is tests/fixtures/aws_signer/plugin.py, a test double that makes that
envelope locally with a chain made here, shaped like AWS Signer's (ES384 leaf with AWS Signer's
subject, regional CA, intermediate, root; the signingAuthority scheme; the plugin, profile
version and job attributes); notation checks it and pushes it, as with the real plugin. The
double also answers ``notation verify``'s trusted-identity step, as the real plugin's published
source does, so that notation gives a reference verdict to compare mamori's with.

What this cannot cover: the real service's certificates (their extensions are not public) and
its revocation API (moto has no GetRevocationStatus; mamori does not call it).
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.registry_support import RegistrySupportError, TestRegistry

PLUGIN = "com.amazonaws.signer.notation.plugin"
PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "aws_signer" / "plugin.py"
# The subject AWS Signer gives every account's signing certificate.
SIGNER_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Seattle"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AWS"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "AWS Cryptography"),
        x509.NameAttribute(NameOID.COMMON_NAME, "AWS Signer"),
    ]
)


@dataclass(frozen=True)
class SignerPki:
    """A chain like AWS Signer's: files for the plugin, and the root for the trust store."""

    key: Path  # the signing certificate's P-384 key
    chain: Path  # PEM: signing certificate, regional CA, intermediate, root
    root: Path
    leaf: x509.Certificate


def write_signer_pki(
    directory: Path, *, label: str, leaf_valid_for: datetime.timedelta
) -> SignerPki:
    """Root → intermediate → regional CA → short-lived signing certificate, all P-384, CA
    names carrying ``label`` (the roots of two calls never vouch for each other)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def ca_name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mamori tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{label} {common}"),
            ]
        )

    def usage(*, signer: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=signer,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=not signer,
            crl_sign=not signer,
            encipher_only=False,
            decipher_only=False,
        )

    def issue(
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
        *,
        ca: bool,
        valid_for: datetime.timedelta,
    ) -> x509.Certificate:
        issuer_name, issuer_key = issuer or (subject, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + valid_for)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(usage(signer=not ca), critical=True)
        )
        if not ca:
            codesigning = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING])
            builder = builder.add_extension(codesigning, critical=False)
        return builder.sign(issuer_key, hashes.SHA384())

    keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(4)]
    names = [ca_name("Root CA"), ca_name("Int CA"), ca_name("us-west-2 CA"), SIGNER_SUBJECT]
    years = datetime.timedelta(days=3650)
    certificates: list[x509.Certificate] = []
    for depth, (name, key) in enumerate(zip(names, keys, strict=True)):
        issuer = None if depth == 0 else (names[depth - 1], keys[depth - 1])
        leaf = depth == len(names) - 1
        valid_for = leaf_valid_for if leaf else years
        certificates.append(issue(name, key, issuer, ca=not leaf, valid_for=valid_for))
    pem = serialization.Encoding.PEM
    key_file, chain_file, root_file = (
        directory / "signer.key",
        directory / "chain.crt",
        directory / "root.crt",
    )
    key_file.write_bytes(
        keys[-1].private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    chain_file.write_bytes(b"".join(cert.public_bytes(pem) for cert in reversed(certificates)))
    root_file.write_bytes(certificates[0].public_bytes(pem))
    return SignerPki(key_file, chain_file, root_file, certificates[-1])


@dataclass(frozen=True)
class AwsSignerCli:
    """A notation configuration (its own XDG_CONFIG_HOME) with the plugin double installed."""

    registry: TestRegistry
    config_home: Path

    @classmethod
    def installed(cls, registry: TestRegistry, config_home: Path) -> AwsSignerCli:
        """Put the double where notation looks for the plugin: plugins/<name>/notation-<name>,
        a launcher running it with this interpreter (it needs cryptography, nothing else)."""
        directory = config_home / "notation" / "plugins" / PLUGIN
        directory.mkdir(parents=True, exist_ok=True)
        launcher = directory / f"notation-{PLUGIN}"
        launcher.write_text(
            f"#!{sys.executable}\nimport runpy\n"
            f"runpy.run_path({str(PLUGIN_SOURCE)!r}, run_name='__main__')\n"
        )
        launcher.chmod(0o755)
        return cls(registry, config_home)

    def sign(self, image: str, profile_arn: str, pki: SignerPki, **config: str) -> None:
        """``notation sign --plugin … --id <profile ARN>``; ``config`` adds plugin
        configuration (profile_version=…, expiry_seconds=…, omit=…, extra_critical=…, scheme=…)."""
        settings = {"signing-key": str(pki.key), "certificate-chain": str(pki.chain)}
        settings.update({name.replace("_", "-"): value for name, value in config.items()})
        args = ["sign", "--plugin", PLUGIN, "--id", profile_arn]
        for name, value in settings.items():
            args += ["--plugin-config", f"{name}={value}"]
        args += ["--force-referrers-tag=true", image]
        self.registry.notation(*args, config_home=self.config_home)

    def verify(self, image: str, *, root: Path, identities: Sequence[str]) -> bool:
        """Whether ``notation verify`` (strict, revocation skipped as mamori skips it) accepts
        ``image`` with ``root`` in a signingAuthority trust store, as AWS Signer's guide sets it
        up, and ``identities`` trusted; the plugin double answers the identity step."""
        store = self.config_home / "notation" / "truststore" / "x509" / "signingAuthority"
        (store / "aws").mkdir(parents=True, exist_ok=True)
        for old in (store / "aws").iterdir():
            old.unlink()
        (store / "aws" / "root.crt").write_bytes(root.read_bytes())
        policy = {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "aws-signer",
                    "registryScopes": ["*"],
                    "signatureVerification": {
                        "level": "strict",
                        "override": {"revocation": "skip"},
                    },
                    "trustStores": ["signingAuthority:aws"],
                    "trustedIdentities": list(identities),
                }
            ],
        }
        policy_file = self.config_home / "trustpolicy-to-import.json"
        policy_file.write_text(json.dumps(policy))
        self.registry.notation(
            "policy", "import", "--force", str(policy_file), config_home=self.config_home
        )
        try:
            self.registry.notation("verify", image, config_home=self.config_home)
        except RegistrySupportError as error:
            if "signature verification failed" not in str(error):
                raise  # not a verdict: a test set notation up wrong
            return False
        return True
