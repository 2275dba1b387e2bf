"""AWS Signer's Notation signatures, judged as AWS Signer's Notation plugin judges them.

AWS Signer (signing platform ``Notation-OCI-SHA384-ECDSA``) makes the whole envelope in the
service: a JWS, ES384, signed by a short-lived certificate (subject ``CN=AWS Signer, OU=AWS
Cryptography, O=AWS, L=Seattle, ST=WA, C=US``) under a regional CA, an intermediate and AWS
Signer's root; the ``notary.x509.signingAuthority`` scheme (so the certificates need only have
been valid at the authentic signing time); an expiry set by the signing profile's validity
period; and critical extended attributes naming the verification plugin
(``com.amazonaws.signer.notation.plugin``), the signing profile version ARN and the signing job
ARN.

Because every AWS account's signatures carry the same certificate subject, the certificate says
only that AWS Signer signed; *who* signed is the signing profile. So the plugin takes over
Notation's trusted-identity step: a trusted identity is a signing profile ARN
(``arn:aws:signer:<region>:<account>:/signing-profiles/<name>``: any version of it) or a profile
version ARN (``…/<name>/<version>``: that version only), compared as the plugin compares them
(ignoring case); other identities are not consulted, and ``*`` is not accepted. The Notary
Project's plugin specification invites verifiers to implement a published plugin's logic
themselves; this module does so for the trusted-identity step, from the plugin's published
source. The plugin's other step, revocation (the Signer ``GetRevocationStatus`` API), is not
made here: see docs/supply-chain.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from mamori.supplychain.verdicts import Untrusted

__all__ = [
    "ARN_EXAMPLE",
    "PLUGIN",
    "PROCESSED_ATTRIBUTES",
    "SigningProfile",
    "matching_profile",
    "parse_signing_profile",
    "signed_profile_version",
]

PLUGIN: Final = "com.amazonaws.signer.notation.plugin"
PROFILE_VERSION_ATTRIBUTE: Final = "com.amazonaws.signer.signingProfileVersion"
JOB_ATTRIBUTE: Final = "com.amazonaws.signer.signingJob"
# The extended attributes the plugin processes: any other one marked critical refuses the
# signature, as Notation refuses an attribute no verifier processed.
PROCESSED_ATTRIBUTES: Final = frozenset({PROFILE_VERSION_ATTRIBUTE, JOB_ATTRIBUTE})
SIGNING_AUTHORITY: Final = "notary.x509.signingAuthority"
MIN_VERSION_ATTRIBUTE: Final = "io.cncf.notary.verificationPluginMinVersion"

# arn:<partition>:signer:<region>:<account>:/signing-profiles/<name>[/<version>]
PROFILE_ARN_RE: Final = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):signer:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"/signing-profiles/(?P<name>[A-Za-z0-9_]+)(?:/(?P<version>[A-Za-z0-9]+))?",
    re.ASCII,
)
ARN_EXAMPLE: Final = "arn:aws:signer:<region>:<account>:/signing-profiles/<name>"


@dataclass(frozen=True, slots=True)
class SigningProfile:
    """A trusted AWS Signer identity: a signing profile, or one version of it (``versioned``)."""

    text: str  # as configured
    versioned: bool

    def admits(self, profile_version_arn: str) -> bool:
        """The plugin's rule: a version ARN must equal the signed one; a profile ARN must equal
        the signed one without its last ``/version``. ASCII case is ignored, as the plugin
        ignores it (identities are ASCII, so a signed value that is not never matches).
        """
        if not profile_version_arn.isascii():
            return False
        signed, trusted = profile_version_arn.lower(), self.text.lower()
        if self.versioned:
            return signed == trusted
        profile, slash, _ = signed.rpartition("/")
        return bool(slash) and profile == trusted


def parse_signing_profile(text: str) -> SigningProfile | None:
    """The AWS Signer identity ``text`` names, or None if it is no ARN at all (an
    ``x509.subject`` identity). Raises ValueError for an ARN that names no signing profile:
    the plugin would ignore it silently, and the admin would never learn why nothing matches.
    """
    value = text.strip()
    if not value.startswith("arn:"):
        return None
    match = PROFILE_ARN_RE.fullmatch(value)
    if match is None:
        raise ValueError(
            f"trusted identity {text!r} is not an AWS Signer signing profile ARN "
            f"({ARN_EXAMPLE}, optionally followed by /<version>)"
        )
    return SigningProfile(value, versioned=match.group("version") is not None)


def matching_profile(
    profile_version_arn: str, profiles: Iterable[SigningProfile]
) -> SigningProfile | None:
    """The first trusted profile that admits the signature's profile version, if any."""
    return next((profile for profile in profiles if profile.admits(profile_version_arn)), None)


def signed_profile_version(headers: Mapping[object, object], scheme: object) -> str | Untrusted:
    """The signing profile version ARN an AWS Signer signature names, once its signed
    attributes are what the plugin accepts; or why they are not.

    ``headers`` is the protected header, already read by the Notation reader (critical names
    present, the plugin attribute critical); which critical names are processed is the
    reader's to check, with PROCESSED_ATTRIBUTES.
    """
    if scheme != SIGNING_AUTHORITY:
        return Untrusted(
            f"the AWS Signer signature uses the signing scheme {str(scheme)[:80]!r}; AWS "
            f"Signer's plugin accepts only {SIGNING_AUTHORITY}"
        )
    if MIN_VERSION_ATTRIBUTE in headers:
        wanted = str(headers[MIN_VERSION_ATTRIBUTE])[:40]
        return Untrusted(
            f"the AWS Signer signature asks for version {wanted!r} or later of AWS Signer's "
            "Notation plugin; mamori verifies as version 1.0 of the plugin does, and does not "
            "know what a later one checks"
        )
    profile_version = headers.get(PROFILE_VERSION_ATTRIBUTE)
    if not isinstance(profile_version, str) or not profile_version:
        return Untrusted(
            f"the AWS Signer signature has no {PROFILE_VERSION_ATTRIBUTE} naming its signing "
            "profile version"
        )
    job = headers.get(JOB_ATTRIBUTE)
    if job is not None and not isinstance(job, str):
        return Untrusted(f"the AWS Signer signature's {JOB_ATTRIBUTE} is not text")
    return profile_version
