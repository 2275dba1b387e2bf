"""AWS Signer signatures on hand-built envelopes: the plugin's identity rules and attributes.

Each case starts from one valid AWS Signer-shaped signature (an ES384 leaf with AWS Signer's
subject under a CA chain, the signingAuthority scheme, the plugin, profile version and job
attributes, all critical) and changes one thing. The envelopes come from the Notation unit
tests' builders; the real notation CLI's are in tests/integration/test_aws_signer_signatures.py.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mamori.supplychain.aws_signer import (
    SigningProfile,
    matching_profile,
    parse_signing_profile,
)
from mamori.supplychain.notation import NotationTrust, load_notation_trust
from mamori.supplychain.verdicts import Form, Malformed, UnknownKey, Untrusted, Verified
from tests.unit.test_notation_verify import (
    AUTHENTIC,
    DAY,
    EXPIRY,
    FORMS,
    HOUR,
    NOW,
    PLUGIN,
    SCHEME,
    SIGNING_TIME,
    Issued,
    Signature,
    issue,
    name,
    verdict_of,
)

AWS_PLUGIN = "com.amazonaws.signer.notation.plugin"
PROFILE_VERSION = "com.amazonaws.signer.signingProfileVersion"
JOB = "com.amazonaws.signer.signingJob"
MIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
PROFILE = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/release_images"
SIGNED_VERSION = f"{PROFILE}/Ab3dE5gH7j"
JOB_ARN = "arn:aws:signer:us-west-2:111122223333:/signing-jobs/5f0c6f1e-2b7a-4c0e-9d44-0a1b2c3d4e5f"
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
AWS_CRITICAL = [SCHEME, AUTHENTIC, EXPIRY, PLUGIN, PROFILE_VERSION, JOB]


# --- the signing profile ARNs a policy may write ---------------------------------------------

PROFILES = [
    pytest.param(PROFILE, False, id="profile"),
    pytest.param(SIGNED_VERSION, True, id="profile-version"),
    pytest.param(
        "arn:aws-us-gov:signer:us-gov-west-1:111122223333:/signing-profiles/p1",
        False,
        id="govcloud",
    ),
    pytest.param(
        "arn:aws-cn:signer:cn-north-1:111122223333:/signing-profiles/p1/v1", True, id="china"
    ),
    pytest.param(f"  {PROFILE} ", False, id="spaces-around"),
]


@pytest.mark.parametrize(("text", "versioned"), PROFILES)
def test_signing_profile_arns_parse(text: str, versioned: bool) -> None:
    assert parse_signing_profile(text) == SigningProfile(text.strip(), versioned)


@pytest.mark.parametrize(
    "text", ["x509.subject: C=US, ST=WA, O=AWS", "*", "C=US, ST=WA, O=acme", "arnold=x"]
)
def test_what_is_no_arn_is_left_to_the_x509_reader(text: str) -> None:
    assert parse_signing_profile(text) is None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("arn:aws:signer:us-west-2:111122223333:/signing-jobs/abc", id="a-job"),
        pytest.param("arn:aws:iam::111122223333:role/signer", id="another-service"),
        pytest.param("arn:aws:signer:us-west-2:111122223333:/signing-profiles/", id="no-name"),
        pytest.param(f"{SIGNED_VERSION}/extra", id="too-deep"),
        pytest.param("arn:aws:signer:us-west-2:1111:/signing-profiles/p", id="short-account"),
        pytest.param("arn:aws:signer:us-west-2:111122223333:signing-profiles/p", id="no-slash"),
        pytest.param("arn:aws:signer:us-west-2:111122223333:/signing-profiles/a-b", id="dash"),
    ],
)
def test_an_arn_that_names_no_signing_profile_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ValueError, match="is not an AWS Signer signing profile ARN"):
        parse_signing_profile(text)


MATCHES = [
    pytest.param(PROFILE, SIGNED_VERSION, True, id="profile-admits-its-version"),
    pytest.param(SIGNED_VERSION, SIGNED_VERSION, True, id="version-admits-itself"),
    pytest.param(PROFILE.replace("release", "RELEASE"), SIGNED_VERSION, True, id="case-ignored"),
    pytest.param(f"{PROFILE}/Zz9yX8wV7u", SIGNED_VERSION, False, id="another-version"),
    pytest.param(PROFILE.replace("release_images", "release"), SIGNED_VERSION, False, id="prefix"),
    pytest.param(
        PROFILE.replace("release_images", "release_images_eu"), SIGNED_VERSION, False, id="longer"
    ),
    pytest.param(PROFILE.replace("us-west-2", "us-east-1"), SIGNED_VERSION, False, id="region"),
    pytest.param(PROFILE, PROFILE, False, id="profile-is-not-its-own-version"),
    pytest.param(PROFILE, "release_images", False, id="signed-value-without-slash"),
    pytest.param(
        PROFILE, SIGNED_VERSION.replace("images", "image\u017f"), False, id="non-ascii-lookalike"
    ),
]


@pytest.mark.parametrize(("identity", "signed", "admitted"), MATCHES)
def test_profiles_admit_signed_versions_as_the_plugin_does(
    identity: str, signed: str, admitted: bool
) -> None:
    profile = parse_signing_profile(identity)
    assert profile is not None
    assert profile.admits(signed) is admitted
    assert (matching_profile(signed, [profile]) == profile) is admitted


# --- whole signatures -------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsPki:
    root: Issued
    leaf: Issued  # AWS Signer's subject, P-384, under an intermediate
    intermediate: Issued
    stranger_root: Issued


@pytest.fixture(scope="module")
def pki() -> AwsPki:
    root = issue(name("signer root"))
    intermediate = issue(name("signer regional CA"), issuer=root, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = issue(
        SIGNER_SUBJECT,
        issuer=intermediate,
        key=leaf_key,
        not_before=NOW - 2 * HOUR,
        not_after=NOW + HOUR,  # AWS Signer's certificates live for days, not years
    )
    return AwsPki(root, leaf, intermediate, issue(name("stranger root", "stranger")))


def aws_signed(pki: AwsPki, **changes: Any) -> Signature:
    """A signature as AWS Signer makes it, changed by ``changes`` (headers merged)."""
    headers: dict[str, Any] = {
        SCHEME: "notary.x509.signingAuthority",
        SIGNING_TIME: None,
        AUTHENTIC: NOW - HOUR,
        EXPIRY: NOW + 30 * DAY,
        PLUGIN: AWS_PLUGIN,
        PROFILE_VERSION: SIGNED_VERSION,
        JOB: JOB_ARN,
    }
    headers.update(changes.pop("headers", {}))
    base = Signature(
        chain=(pki.leaf, pki.intermediate, pki.root), headers=headers, critical=AWS_CRITICAL
    )
    return replace(base, **changes)


def trusting(pki: AwsPki, *identities: str) -> NotationTrust:
    return load_notation_trust([pki.root.pem], identities or (PROFILE,))


Case = Callable[[AwsPki], tuple[Signature, NotationTrust, datetime.datetime]]

ACCEPTED: list[Any] = [
    pytest.param(lambda p: (aws_signed(p), trusting(p), NOW), id="as-aws-signer-signs"),
    pytest.param(
        lambda p: (aws_signed(p), trusting(p, SIGNED_VERSION), NOW), id="trusted-profile-version"
    ),
    pytest.param(
        lambda p: (
            aws_signed(p),
            trusting(p, "arn:aws:signer:eu-west-1:111122223333:/signing-profiles/other", PROFILE),
            NOW,
        ),
        id="second-trusted-profile",
    ),
    pytest.param(
        lambda p: (aws_signed(p), trusting(p), NOW + 20 * DAY),
        id="certificates-expired-since-signing",
    ),
    pytest.param(
        lambda p: (
            aws_signed(p, critical=[SCHEME, AUTHENTIC, EXPIRY, PLUGIN]),
            trusting(p),
            NOW,
        ),
        id="aws-attributes-not-critical",
    ),
    pytest.param(
        lambda p: (
            aws_signed(p, headers={JOB: None}, critical=AWS_CRITICAL[:-1]),
            trusting(p),
            NOW,
        ),
        id="no-job-attribute",
    ),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", ACCEPTED)
def test_an_aws_signer_signature_under_a_trusted_profile_verifies(
    pki: AwsPki, form: Form, case: Case
) -> None:
    signature, trust, now = case(pki)
    result = verdict_of(replace(signature, form=form), trust, now=now)
    assert isinstance(result, Verified), result
    assert result.key_index == 0 and result.form is form


REFUSED: list[Any] = [
    pytest.param(
        lambda p: (aws_signed(p), trusting(p, f"{PROFILE}/Zz9yX8wV7u"), NOW),
        Untrusted,
        f"signing profile version '{SIGNED_VERSION}' matches none of the trusted signing profiles",
        id="another-version-trusted",
    ),
    pytest.param(
        lambda p: (aws_signed(p), load_notation_trust([p.root.pem]), NOW),
        Untrusted,
        "it counts only if trustedIdentities lists its signing profile ARN",
        id="no-identities",
    ),
    pytest.param(
        lambda p: (aws_signed(p), load_notation_trust([p.root.pem], ["*"]), NOW),
        Untrusted,
        "it counts only if trustedIdentities lists its signing profile ARN",
        id="wildcard",
    ),
    pytest.param(
        lambda p: (
            aws_signed(p),
            load_notation_trust([p.root.pem], ["x509.subject: C=US, ST=WA, O=AWS"]),
            NOW,
        ),
        Untrusted,
        "since AWS Signer's certificates are the same for every AWS account",
        id="x509-subject-of-aws-signer",
    ),
    pytest.param(
        lambda p: (
            aws_signed(p, headers={PLUGIN: "com.example.plugin"}),
            trusting(p),
            NOW,
        ),
        Untrusted,
        "requires the Notation verification plugin 'com.example.plugin', which mamori does not run",
        id="another-plugin",
    ),
    pytest.param(
        lambda p: (
            aws_signed(p, headers={MIN_VERSION: "1.1.0"}, critical=[*AWS_CRITICAL, MIN_VERSION]),
            trusting(p),
            NOW,
        ),
        Untrusted,
        "asks for version '1.1.0' or later of AWS Signer's Notation plugin",
        id="plugin-min-version",
    ),
    pytest.param(
        lambda p: (
            aws_signed(
                p,
                headers={"com.amazonaws.signer.signingProfileAlias": "release"},
                critical=[*AWS_CRITICAL, "com.amazonaws.signer.signingProfileAlias"],
            ),
            trusting(p),
            NOW,
        ),
        Untrusted,
        "marks 'com.amazonaws.signer.signingProfileAlias' critical, which mamori does not "
        "understand",
        id="attribute-the-plugin-does-not-process",
    ),
    pytest.param(
        lambda p: (
            aws_signed(p, headers={PROFILE_VERSION: None}, critical=[*AWS_CRITICAL[:4], JOB]),
            trusting(p),
            NOW,
        ),
        Untrusted,
        "has no com.amazonaws.signer.signingProfileVersion",
        id="no-profile-version",
    ),
    pytest.param(
        lambda p: (aws_signed(p, headers={PROFILE_VERSION: 7}), trusting(p), NOW),
        Untrusted,
        "has no com.amazonaws.signer.signingProfileVersion",
        id="profile-version-not-text",
    ),
    pytest.param(
        lambda p: (aws_signed(p, headers={JOB: ["x"]}), trusting(p), NOW),
        Untrusted,
        "com.amazonaws.signer.signingJob is not text",
        id="job-not-text",
    ),
    pytest.param(
        lambda p: (
            aws_signed(
                p,
                headers={SCHEME: "notary.x509", AUTHENTIC: None, SIGNING_TIME: NOW - HOUR},
                critical=[SCHEME, EXPIRY, PLUGIN, PROFILE_VERSION, JOB],
            ),
            trusting(p),
            NOW,
        ),
        Untrusted,
        "AWS Signer's plugin accepts only notary.x509.signingAuthority",
        id="not-the-signing-authority-scheme",
    ),
    pytest.param(
        lambda p: (
            aws_signed(p, headers={PLUGIN: AWS_PLUGIN}, critical=AWS_CRITICAL[:3]),
            trusting(p),
            NOW,
        ),
        Malformed,
        "io.cncf.notary.verificationPlugin is present but not marked critical",
        id="plugin-not-critical",
    ),
    pytest.param(
        lambda p: (aws_signed(p, headers={AUTHENTIC: NOW - 3 * HOUR}), trusting(p), NOW),
        Untrusted,
        "was not valid when the signature was made",
        id="signed-before-the-certificate-was-valid",
    ),
    pytest.param(
        lambda p: (aws_signed(p), trusting(p), NOW + 31 * DAY),
        Untrusted,
        "the signature expired on",
        id="signature-expired",
    ),
    pytest.param(
        lambda p: (aws_signed(p), load_notation_trust([p.stranger_root.pem], [PROFILE]), NOW),
        UnknownKey,
        "",
        id="chain-to-another-root",
    ),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("case", "expected", "reason"), REFUSED)
def test_an_aws_signer_signature_is_refused_saying_why(
    pki: AwsPki, form: Form, case: Case, expected: type, reason: str
) -> None:
    signature, trust, now = case(pki)
    result = verdict_of(replace(signature, form=form), trust, now=now)
    assert isinstance(result, expected), result
    if not isinstance(result, UnknownKey):
        assert reason in result.reason  # type: ignore[union-attr]


def test_an_entry_of_signing_profiles_refuses_signatures_not_made_by_aws_signer(
    pki: AwsPki,
) -> None:
    """Its roots vouch for AWS Signer's signatures only: a plain Notation signature by the
    same chain (notary.x509, no plugin) does not count, as Notation would not count it."""
    plain = Signature(chain=(pki.leaf, pki.intermediate, pki.root))
    result = verdict_of(plain, trusting(pki), now=NOW)
    assert isinstance(result, Untrusted), result
    assert "the trusted identities are AWS Signer signing profiles" in result.reason
    assert "'CN=AWS Signer,OU=AWS Cryptography,O=AWS,L=Seattle,ST=WA,C=US'" in result.reason


# --- the trust an entry loads -----------------------------------------------------------------


def test_signing_profiles_load_apart_from_subjects_and_change_the_fingerprint(
    pki: AwsPki,
) -> None:
    trust = load_notation_trust([pki.root.pem], [PROFILE, SIGNED_VERSION])
    assert trust.identities == ()
    assert trust.signing_profiles == (
        SigningProfile(PROFILE, False),
        SigningProfile(SIGNED_VERSION, True),
    )
    fingerprints = {
        load_notation_trust([pki.root.pem], identities).fingerprint
        for identities in ([PROFILE], [SIGNED_VERSION], ["x509.subject: C=US, ST=WA, O=AWS"], [])
    }
    assert len(fingerprints) == 4


@pytest.mark.parametrize(
    ("identities", "message"),
    [
        pytest.param(
            [PROFILE, "x509.subject: C=US, ST=WA, O=acme"],
            "an entry trusts one kind or the other",
            id="mixed-kinds",
        ),
        pytest.param(["*", PROFILE], "must be the only one listed", id="wildcard-and-profile"),
        pytest.param(
            ["arn:aws:signer:us-west-2:111122223333:/signing-jobs/abc"],
            "is not an AWS Signer signing profile ARN",
            id="job-arn",
        ),
        pytest.param(
            ["x509.san: example"],
            "only x509.subject identities and AWS Signer signing profile ARNs",
            id="other-kind",
        ),
    ],
)
def test_bad_identities_are_value_errors_saying_what(
    pki: AwsPki, identities: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_notation_trust([pki.root.pem], identities)
