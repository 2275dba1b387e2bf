"""spec.imageSignatures[].notation.trustedIdentities written as AWS Signer signing profile ARNs."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.policy import PolicyError, parse_policy
from mamori.supplychain.aws_signer import SigningProfile
from tests.unit.rules.test_image_signatures import ROOT
from tests.unit.test_policy_signatures import document

AT = "spec.imageSignatures[0].notation"
PROFILE = "arn:aws:signer:ap-northeast-1:111122223333:/signing-profiles/release_images"


def entry(*identities: str) -> list[dict[str, Any]]:
    notation = {"trustedCertificates": [ROOT], "trustedIdentities": list(identities)}
    return [{"images": ["registry.example/team"], "notation": notation}]


def test_signing_profile_arns_parse_into_the_entrys_trust() -> None:
    policy = parse_policy(document(entry(PROFILE, f"{PROFILE}/Ab3dE5gH7j")))
    (requirement,) = policy.rules.signatures
    assert requirement.notation is not None
    assert requirement.notation.identities == ()
    assert requirement.notation.signing_profiles == (
        SigningProfile(PROFILE, False),
        SigningProfile(f"{PROFILE}/Ab3dE5gH7j", True),
    )
    other = parse_policy(document(entry(PROFILE.replace("release_images", "nightly"))))
    assert other.rules.signatures[0].fingerprint != requirement.fingerprint
    # what a denial says the entry accepts
    assert requirement.accepted == "an AWS Signer signature by one of its signing profiles"


BAD = [
    pytest.param(
        [PROFILE.replace("signing-profiles", "signing-jobs")],
        "is not an AWS Signer signing profile ARN",
        id="not-a-profile",
    ),
    pytest.param(
        [PROFILE, "x509.subject: C=US, ST=WA, O=acme"],
        "an entry trusts one kind or the other",
        id="mixed-with-subjects",
    ),
    pytest.param(["*", PROFILE], "must be the only one listed", id="with-wildcard"),
]


@pytest.mark.parametrize(("identities", "says"), BAD)
def test_bad_signing_profile_identities_are_refused_naming_the_entry(
    identities: list[str], says: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(document(entry(*identities)))
    assert raised.value.path == AT, str(raised.value)
    assert says in raised.value.message
