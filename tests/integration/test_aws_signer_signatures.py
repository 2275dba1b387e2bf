"""AWS Signer-shaped Notation signatures, made by the real notation CLI, verified by mamori.

notation signs through a test double of AWS Signer's plugin (tests/integration/
aws_signer_support.py): the envelope is made as AWS Signer makes it, and notation checks and
pushes it into the real registry of registry_support.py. mamori.supplychain.notation judges it
through RegistryClient; where it decides, ``notation verify`` (strict, revocation skipped, the
double answering the identity step as the real plugin's source does) is asked too, and must
agree.

Covered: the envelope, the chain and its validity at the authentic signing time, the signed
attributes, the trusted-identity rules. Not covered: AWS Signer's own certificates and its
revocation API (see aws_signer_support.py).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mamori.images import parse_reference
from mamori.supplychain.artifacts import RepositorySource
from mamori.supplychain.notation import NotationTrust, load_notation_trust, verify_image
from mamori.supplychain.registry import Credentials, RegistryClient, RegistryClientConfig
from mamori.supplychain.verdicts import Form, UnknownKey, Untrusted, Verdict, Verified
from tests.integration.aws_signer_support import AwsSignerCli, SignerPki, write_signer_pki
from tests.integration.registry_support import TestRegistry, running_registry
from tests.integration.test_check_registry_access import check, docker_config, write_pod

pytestmark = pytest.mark.integration

REPOSITORY = "demo/aws-signer"
ACCOUNT = "111122223333"
PROFILE = f"arn:aws:signer:us-west-2:{ACCOUNT}:/signing-profiles/release_images"
VERSION = "Ab3dE5gH7j"
PROFILE_VERSION = f"{PROFILE}/{VERSION}"
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Setup:
    cli: AwsSignerCli
    pki: SignerPki  # under the root the policy trusts
    stranger: SignerPki  # the same shape, under a root nobody trusts


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def setup(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    base = tmp_path_factory.mktemp("aws-signer")
    # AWS Signer's signing certificates live for days; signatures outlive them
    hours = datetime.timedelta(hours=6)
    return Setup(
        cli=AwsSignerCli.installed(registry, base / "notation"),
        pki=write_signer_pki(base / "pki", label="trusted", leaf_valid_for=hours),
        stranger=write_signer_pki(base / "stranger", label="stranger", leaf_valid_for=hours),
    )


def trust(setup: Setup, *identities: str) -> NotationTrust:
    return load_notation_trust([setup.pki.root.read_bytes()], identities)


def tag_for(*texts: str) -> str:
    """A tag of its own for one case: its image (and digest) carries that case's signature only."""
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]


def pushed(registry: TestRegistry, tag: str) -> tuple[str, str]:
    """A fresh image under ``tag``: (its digest, repository@digest for the CLI)."""
    digest = registry.push_image(REPOSITORY, tag, f"content of {tag}")
    return digest, f"{registry.address}/{REPOSITORY}@{digest}"


def verdict(
    registry: TestRegistry, trusted: NotationTrust, digest: str, *, later: datetime.timedelta
) -> Verdict:
    config = RegistryClientConfig(ssl_context=registry.ssl_context(), deadline=5.0, cache_ttl=0)
    reference = parse_reference(f"{registry.address}/{REPOSITORY}@{digest}")
    credentials = Credentials(registry.username, registry.password)
    source = RepositorySource(RegistryClient(config), reference, credentials)
    now = datetime.datetime.now(datetime.UTC) + later
    return verify_image(source, digest, trusted, now=now)


def verified_by(setup: Setup) -> Verified:
    leaf = setup.pki.leaf.public_bytes(serialization.Encoding.DER)
    return Verified(0, hashlib.sha256(leaf).hexdigest(), Form.NOTATION_JWS)


OTHER_ACCOUNT_PROFILE = PROFILE.replace(ACCOUNT, "444455556666")
IDENTITIES = [
    pytest.param(PROFILE, True, id="the-profile"),
    pytest.param(PROFILE_VERSION, True, id="the-profile-version"),
    pytest.param(PROFILE.replace("release_images", "Release_Images"), True, id="name-case"),
    pytest.param(f"{PROFILE}/Zz9yX8wV7u", False, id="another-version"),
    pytest.param(PROFILE.replace("release_images", "release"), False, id="another-profile"),
    pytest.param(OTHER_ACCOUNT_PROFILE, False, id="same-name-another-account"),
    pytest.param(PROFILE.replace("us-west-2", "eu-west-1"), False, id="another-region"),
]


@pytest.mark.parametrize(("identity", "accepted"), IDENTITIES)
def test_signing_profiles_match_as_aws_signers_plugin_matches_them(
    registry: TestRegistry, setup: Setup, identity: str, accepted: bool
) -> None:
    digest, image = pushed(registry, f"identity-{tag_for(identity)}")
    setup.cli.sign(image, PROFILE, setup.pki, profile_version=VERSION)
    result = verdict(registry, trust(setup, identity), digest, later=datetime.timedelta(0))
    if accepted:
        assert result == verified_by(setup)
    else:
        assert isinstance(result, Untrusted), result
        assert f"signing profile version '{PROFILE_VERSION}' matches none" in result.reason
    assert setup.cli.verify(image, root=setup.pki.root, identities=[identity]) is accepted


def test_a_signature_outlives_its_short_lived_certificate_until_it_expires(
    registry: TestRegistry, setup: Setup
) -> None:
    """AWS Signer's certificates expire within days; under the signingAuthority scheme a
    signature counts as long as they were valid when it was made, until its own expiry."""
    digest, image = pushed(registry, "outlives")
    setup.cli.sign(image, PROFILE, setup.pki, expiry_seconds=str(10 * 86400))
    assert setup.pki.leaf.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + DAY
    assert verdict(registry, trust(setup, PROFILE), digest, later=2 * DAY) == verified_by(setup)
    result = verdict(registry, trust(setup, PROFILE), digest, later=11 * DAY)
    assert isinstance(result, Untrusted) and "the signature expired on" in result.reason


@pytest.mark.parametrize(
    "identities",
    [
        pytest.param((), id="none"),
        pytest.param(("*",), id="wildcard"),
        pytest.param(("x509.subject: C=US, ST=WA, O=AWS, CN=AWS Signer",), id="x509-subject"),
    ],
)
def test_without_a_signing_profile_an_aws_signer_signature_does_not_count(
    registry: TestRegistry, setup: Setup, identities: tuple[str, ...]
) -> None:
    """AWS Signer's certificates are the same for every AWS account: trusting its root and
    any subject would trust everyone's signatures."""
    digest, image = pushed(registry, f"no-profile-{tag_for(*identities)}")
    setup.cli.sign(image, PROFILE, setup.pki)
    result = verdict(registry, trust(setup, *identities), digest, later=datetime.timedelta(0))
    assert isinstance(result, Untrusted), result
    assert "counts only if trustedIdentities lists its signing profile ARN" in result.reason
    notation_identities = list(identities) or ["*"]
    assert not setup.cli.verify(image, root=setup.pki.root, identities=notation_identities)


def test_a_signature_under_another_root_is_an_unknown_key(
    registry: TestRegistry, setup: Setup
) -> None:
    digest, image = pushed(registry, "stranger")
    setup.cli.sign(image, PROFILE, setup.stranger)
    result = verdict(registry, trust(setup, PROFILE), digest, later=datetime.timedelta(0))
    assert result == UnknownKey((Form.NOTATION_JWS,))
    assert not setup.cli.verify(image, root=setup.pki.root, identities=[PROFILE])


REFUSED = [
    pytest.param(
        {"extra_critical": "com.amazonaws.signer.signingProfileAlias=release"},
        "marks 'com.amazonaws.signer.signingProfileAlias' critical",
        id="unknown-critical-attribute",
    ),
    pytest.param(
        {"omit": "com.amazonaws.signer.signingProfileVersion"},
        "has no com.amazonaws.signer.signingProfileVersion",
        id="no-profile-version",
    ),
    pytest.param(
        {"scheme": "notary.x509"},
        "accepts only notary.x509.signingAuthority",
        id="not-the-signing-authority-scheme",
    ),
]


@pytest.mark.parametrize(("config", "reason"), REFUSED)
def test_signed_attributes_the_plugin_would_refuse_are_refused(
    registry: TestRegistry, setup: Setup, config: dict[str, str], reason: str
) -> None:
    digest, image = pushed(registry, f"attributes-{tag_for(*config)}")
    setup.cli.sign(image, PROFILE, setup.pki, **config)
    result = verdict(registry, trust(setup, PROFILE), digest, later=datetime.timedelta(0))
    assert isinstance(result, Untrusted), result
    assert reason in result.reason
    assert not setup.cli.verify(image, root=setup.pki.root, identities=[PROFILE])


def test_an_entry_of_signing_profiles_refuses_a_signature_not_made_by_aws_signer(
    registry: TestRegistry, setup: Setup, tmp_path: Path
) -> None:
    """The same key and chain, signed by notation itself (notary.x509, no plugin): an entry
    that trusts signing profiles trusts AWS Signer's signatures only."""
    digest, image = pushed(registry, "plain-notation")
    signer = registry.notation_signer_from_files(
        tmp_path / "plain", "plain", setup.pki.key, setup.pki.chain
    )
    registry.notation_sign(signer, image)
    result = verdict(registry, trust(setup, PROFILE), digest, later=datetime.timedelta(0))
    assert isinstance(result, Untrusted), result
    assert "was not made by AWS Signer" in result.reason
    assert not setup.cli.verify(image, root=setup.pki.root, identities=[PROFILE])


def test_mamori_check_admits_by_signing_profile_as_the_webhook_would(
    registry: TestRegistry, setup: Setup, tmp_path: Path
) -> None:
    """The whole path users run: a policy written with a signing profile ARN, parsed, and the
    image-signatures rule asking the registry (``mamori check --registry-access``)."""
    _, trusted = pushed(registry, "check-trusted")
    setup.cli.sign(trusted, PROFILE, setup.pki)
    _, stranger = pushed(registry, "check-other-account")
    setup.cli.sign(stranger, OTHER_ACCOUNT_PROFILE, setup.pki)
    entry = {
        "images": [f"{registry.address}/{REPOSITORY}"],
        "notation": {
            "trustedCertificates": [setup.pki.root.read_text()],
            "trustedIdentities": [PROFILE],
        },
    }
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "apiVersion": "mamori.io/v1alpha1",
                "kind": "ClusterSecurityPolicy",
                "metadata": {"name": "aws-signer"},
                "spec": {"podSecurity": "privileged", "imageSignatures": [entry]},
            }
        )
    )
    env = {"DOCKER_CONFIG": str(docker_config(tmp_path, registry))}
    flags = ["--policy", str(policy), "--registry-access", "--registry-ca-file"]
    flags.append(str(registry.ca_file))
    admitted = check(*flags, str(write_pod(tmp_path, "trusted", trusted)), env=env)
    assert admitted.returncode == 0, admitted.stdout + admitted.stderr
    denied = check(*flags, str(write_pod(tmp_path, "stranger", stranger)), env=env)
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "[image-signatures]" in denied.stdout
    assert "matches none of the trusted signing profiles" in denied.stdout
