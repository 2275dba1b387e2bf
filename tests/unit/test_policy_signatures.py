"""spec.imageSignatures: what parses, and for what is wrong, which field the error names."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.policy import PolicyError, parse_policy
from tests.unit.rules.test_image_signatures import KEY, ROOT


def document(signatures: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": "signed"},
        "spec": {"imageSignatures": signatures},
    }


def test_both_kinds_of_trust_parse_into_requirements() -> None:
    policy = parse_policy(
        document(
            [
                {
                    "images": ["registry.example/team", "*.registry.example"],
                    "cosign": {"publicKeys": [KEY, KEY]},
                },
                {
                    "images": ["registry.example/app"],
                    "notation": {
                        "trustedCertificates": [ROOT],
                        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=acme"],
                    },
                    "cosign": {"publicKeys": [KEY]},
                },
            ]
        )
    )
    first, second = policy.rules.signatures
    assert first.index == 0 and first.listing == "registry.example/team, *.registry.example"
    assert len(first.cosign_keys) == 2 and first.notation is None
    assert first.accepted == "a cosign signature by one of its 2 keys"
    assert second.notation is not None and len(second.notation.identities) == 1
    assert second.accepted == (
        "a cosign signature by its key or a Notation signature under its trusted roots"
    )
    assert first.fingerprint != second.fingerprint


@pytest.mark.parametrize("value", [None, []])
def test_absent_or_empty_requires_nothing(value: Any) -> None:
    policy = parse_policy(document(value))
    assert policy.rules.signatures == ()
    assert "image-signatures" not in [rule.id for rule in policy.plan.rules]


HOST = ["registry.example"]
AT = "spec.imageSignatures[0]"
COSIGN = {"publicKeys": [KEY]}
BAD = [
    ("not a list", {"images": ["x"]}, "spec.imageSignatures", "must be a list"),
    ("entry not an object", ["x"], AT, "must be an object"),
    ("no images", [{"cosign": COSIGN}], f"{AT}.images", "at least one"),
    ("empty images", [{"images": [], "cosign": COSIGN}], f"{AT}.images", "at least one"),
    ("bad image prefix", [{"images": ["Not A Host/x"], "cosign": COSIGN}], f"{AT}.images[0]", ""),
    ("no trust at all", [{"images": HOST}], AT, "must set cosign or notation"),
    ("unknown field", [{"images": HOST, "keyless": {}}], f"{AT}.keyless", "unknown field"),
    ("cosign without keys", [{"images": HOST, "cosign": {}}], f"{AT}.cosign.publicKeys",
     "must be set"),
    ("cosign empty keys", [{"images": HOST, "cosign": {"publicKeys": []}}],
     f"{AT}.cosign.publicKeys", "at least one"),
    ("cosign key not PEM", [{"images": HOST, "cosign": {"publicKeys": ["nope"]}}],
     f"{AT}.cosign.publicKeys[0]", "not a usable cosign public key"),
    ("cosign key a certificate", [{"images": HOST, "cosign": {"publicKeys": [ROOT]}}],
     f"{AT}.cosign.publicKeys[0]", "not a usable cosign public key"),
    ("notation without roots", [{"images": HOST, "notation": {}}],
     f"{AT}.notation.trustedCertificates", "must be set"),
    ("notation root not PEM", [{"images": HOST, "notation": {"trustedCertificates": ["nope"]}}],
     f"{AT}.notation", "entry 0"),
    ("notation identity malformed",
     [{"images": HOST, "notation": {"trustedCertificates": [ROOT],
                                    "trustedIdentities": ["x509.subject: nonsense"]}}],
     f"{AT}.notation", ""),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "path", "says"), BAD, ids=[case[0] for case in BAD])
def test_invalid_entries_are_refused_naming_the_field(
    name: str, value: Any, path: str, says: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(document(value))
    assert raised.value.path == path, str(raised.value)
    assert says in raised.value.message
    for pem in (KEY, ROOT):  # key material is never echoed
        assert pem.splitlines()[1] not in str(raised.value)
