"""image-signatures over a fixed registry table: what denies, warns, passes, and what it says.

The table stands in for the registry (the real one is in tests/integration/
test_admission_signatures.py): it answers which digest a tag points to and whether a digest
meets a requirement, and records what it was asked, so the cases also show what the rule asks.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mamori.engine import evaluate, unjudged_rules, uses_registry
from mamori.findings import Decision
from mamori.images import ImageReference
from mamori.policy import Policy, parse_policy
from mamori.rules.registry import ImageEvidence
from mamori.supplychain.lookup import TAG_POINTS_TO, DigestAnswer, SignatureAnswer
from mamori.supplychain.requirements import SignatureRequirement

RULE = "image-signatures"
SIGNED = "sha256:" + "5a" * 32
UNSIGNED = "sha256:" + "0b" * 32
OTHER = "sha256:" + "77" * 32


def public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def root_certificate_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mamori test root")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


KEY = public_key_pem()
ROOT = root_certificate_pem()


class RegistryTable:
    """Tags → digests, and (digest, requirement index) → answer; everything asked is noted."""

    def __init__(
        self,
        tags: Mapping[str, str | None],
        signed: Mapping[tuple[str, int], SignatureAnswer],
        problem: str = "the registry is unreachable or failing (ConnectionRefusedError)",
    ) -> None:
        self.tags = tags
        self.signed = signed
        self.problem = problem
        self.asked: list[str] = []

    def digest(self, reference: ImageReference) -> DigestAnswer:
        if reference.digest is not None:
            return DigestAnswer(reference.digest)
        self.asked.append(f"tag {reference}")
        digest = self.tags.get(str(reference))
        return (
            DigestAnswer(None, self.problem)
            if digest is None
            else DigestAnswer(digest, resolved=True, note=TAG_POINTS_TO)
        )

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        self.asked.append(f"signature {digest} #{requirement.index}")
        return self.signed.get(
            (digest, requirement.index), SignatureAnswer(False, "no cosign signature found")
        )


TABLE_TAGS = {
    "registry.example/team/app:signed": SIGNED,
    "registry.example/team/app:unsigned": UNSIGNED,
    "registry.example/team/app:down": None,
    "registry.example/team/tools:unsigned": UNSIGNED,
}
TABLE_SIGNED = {
    (SIGNED, 0): SignatureAnswer(True, "signed (legacy .sig tag (simple signing))"),
    (SIGNED, 1): SignatureAnswer(True, "signed (Notation signature (JWS))"),
    (OTHER, 0): SignatureAnswer(True, "signed (sigstore bundle (DSSE))"),
    (OTHER, 1): SignatureAnswer(False, "the Notation signature is refused: certificate expired"),
}


def policy(
    enforcement: str = "Enforce", *, requirements: list[dict[str, Any]] | None = None
) -> Policy:
    return parse_policy(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "signed"},
            "spec": {
                "enforcement": enforcement,
                "podSecurity": "privileged",  # the signature rule alone
                "imageSignatures": requirements
                if requirements is not None
                else [
                    {"images": ["registry.example/team"], "cosign": {"publicKeys": [KEY]}},
                    {
                        "images": ["registry.example/team/app"],
                        "notation": {"trustedCertificates": [ROOT]},
                    },
                ],
            },
        }
    )


def pod(*images: str, init: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    }
    if init is not None:
        spec["initContainers"] = [{"name": "init", "image": init}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def judge(resource: dict[str, Any], chosen: Policy, table: RegistryTable | None) -> Decision:
    decision = evaluate(resource, [chosen], namespace="default", registry=table)
    assert decision is not None
    return decision


CASES = [
    # (name, images, init, denied rule messages (substrings) — empty: admitted)
    ("signed by both requirements, by tag", ["registry.example/team/app:signed"], None, []),
    ("signed, pinned by digest", [f"registry.example/team/app@{SIGNED}"], None, []),
    ("an image no requirement covers", ["registry.example/other/app:1"], None, []),
    (
        "unsigned: both requirements say so",
        ["registry.example/team/app:unsigned"],
        None,
        [
            "container \"c0\" image 'registry.example/team/app:unsigned': no cosign signature "
            f"found (spec.imageSignatures[0] requires a signature of digest {UNSIGNED}, what its "
            "tag points to now; it accepts a cosign signature by its key)",
            "(spec.imageSignatures[1] requires a signature of digest",
        ],
    ),
    (
        "one requirement met, the other refused: every matching entry must be met",
        [f"registry.example/team/app@{OTHER}"],
        None,
        [
            "the Notation signature is refused: certificate expired (spec.imageSignatures[1] "
            f"requires a signature of digest {OTHER}; it accepts a Notation signature under its "
            "trusted roots)"
        ],
    ),
    (
        "a tag that cannot be resolved",
        ["registry.example/team/app:down"],
        None,
        [
            "its signature cannot be checked, because its tag could not be resolved to a digest "
            "(the registry is unreachable or failing (ConnectionRefusedError)); the webhook must "
            "reach the registry with credentials it accepts"
        ],
    ),
    (
        "init containers are judged too",
        ["registry.example/team/app:signed"],
        "registry.example/team/tools:unsigned",
        ["container \"init\" image 'registry.example/team/tools:unsigned'"],
    ),
]


@pytest.mark.parametrize(
    ("name", "images", "init", "expected"), CASES, ids=[case[0] for case in CASES]
)
def test_signature_requirements(
    name: str, images: list[str], init: str | None, expected: list[str]
) -> None:
    table = RegistryTable(TABLE_TAGS, TABLE_SIGNED)
    decision = judge(pod(*images, init=init), policy(), table)
    messages = [v.message for v in decision.violations if v.rule == RULE]
    assert decision.allowed is not expected, messages
    for fragment in expected:
        assert any(fragment in message for message in messages), (fragment, messages)
    for message in messages:  # each says what to do
        assert "sign the digest with a key or certificate the policy trusts" in message or (
            "the webhook must reach the registry with credentials it accepts" in message
        )


def test_warn_admits_with_the_reason_and_audit_records_it() -> None:
    table = RegistryTable(TABLE_TAGS, TABLE_SIGNED)
    unsigned = pod("registry.example/team/app:unsigned")
    for enforcement in ("Warn", "Audit"):
        decision = judge(unsigned, policy(enforcement), table)
        assert decision.allowed
        assert {v.rule for v in decision.violations} == {RULE}
        assert all("no cosign signature found" in v.message for v in decision.violations)


def test_each_tag_is_resolved_once_per_image_and_signatures_only_for_covered_images() -> None:
    table = RegistryTable(TABLE_TAGS, TABLE_SIGNED)
    judge(pod("registry.example/team/app:signed", "registry.example/other/app:1"), policy(), table)
    assert table.asked == ["tag registry.example/team/app:signed", f"signature {SIGNED} #0",
                           f"signature {SIGNED} #1"]  # fmt: skip


def test_without_registry_access_the_rule_judges_nothing_and_says_so() -> None:
    chosen = policy()
    decision = judge(pod("registry.example/team/app:unsigned"), chosen, None)
    assert decision.allowed and decision.violations == ()
    assert uses_registry([chosen])
    assert unjudged_rules(chosen, ImageEvidence()) == (RULE,)
    assert unjudged_rules(chosen, ImageEvidence(registry=RegistryTable({}, {}))) == ()


def test_a_policy_without_image_signatures_plans_no_registry_rule() -> None:
    chosen = policy(requirements=[])
    assert RULE not in [rule_id for rule_id, _ in chosen.plan.evidence_checks]
    assert not uses_registry([chosen])
    table = RegistryTable(TABLE_TAGS, TABLE_SIGNED)
    assert judge(pod("registry.example/team/app:unsigned"), chosen, table).allowed
    assert table.asked == []
