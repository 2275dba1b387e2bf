"""``mamori check --registry-access``: CI judges signatures as the webhook does, and without the
flag says what it did not judge.

The registry and the signed images are test_admission_signatures.py's (the real registry, the
real cosign and notation); `mamori check` runs as users run it, a process with flags.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import test_admission_signatures as signatures
from tests.integration.registry_support import NotationSigner, TestRegistry
from tests.integration.test_admission_signatures import COSIGNED, NOTARISED, Images

pytestmark = pytest.mark.integration
# that module's registry, keys and signed images, made anew for this module
registry = signatures.registry
cosign_keys = signatures.cosign_keys
notation_signers = signatures.notation_signers
images = signatures.images
ROOT = Path(__file__).resolve().parents[2]


def write_policy(
    directory: Path, registry: TestRegistry, cosign_keys: dict[str, Path],
    notation_signers: dict[str, NotationSigner],
) -> Path:  # fmt: skip
    policy = {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": "signed"},
        "spec": {
            "podSecurity": "privileged",
            "imageSignatures": [
                {
                    "images": [f"{registry.address}/{COSIGNED}"],
                    "cosign": {"publicKeys": [cosign_keys["ours"].read_text()]},
                },
                {
                    "images": [f"{registry.address}/{NOTARISED}"],
                    "notation": {
                        "trustedCertificates": [notation_signers["ours"].certificates.read_text()]
                    },
                },
            ],
        },
    }
    path = directory / "policy.json"
    path.write_text(json.dumps(policy))
    return path


def write_pod(directory: Path, name: str, image: str) -> Path:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(pod))
    return path


def docker_config(directory: Path, registry: TestRegistry) -> Path:
    """What `docker login` writes: ``auths`` with the base64 user:password."""
    pair = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    folder = directory / "docker"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"auths": {registry.address: {"auth": pair}}}))
    return folder


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAMORI_", "DOCKER_"))}
    return subprocess.run(
        [sys.executable, "-m", "mamori.cli", "check", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        env={**clean, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def setup(
    registry: TestRegistry,
    cosign_keys: dict[str, Path],
    notation_signers: dict[str, NotationSigner],
    images: Images,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("check-registry")
    return {
        "policy": write_policy(directory, registry, cosign_keys, notation_signers),
        "signed": write_pod(directory, "signed", images.tagged(COSIGNED, "bundle")),
        "notarised": write_pod(directory, "notarised", images.tagged(NOTARISED, "cose")),
        "unsigned": write_pod(directory, "unsigned", images.tagged(COSIGNED, "unsigned")),
        "docker": docker_config(directory, registry),
        "ca": registry.ca_file,
    }


def with_access(setup: dict[str, Path], *paths: str, output: str = "text") -> list[str]:
    return [
        "--policy", str(setup["policy"]), "--output", output, "--registry-access",
        "--registry-ca-file", str(setup["ca"]), *paths,
    ]  # fmt: skip


def test_signed_images_pass_and_an_unsigned_one_is_denied_with_the_reason(
    setup: dict[str, Path],
) -> None:
    env = {"DOCKER_CONFIG": str(setup["docker"])}
    passed = check(*with_access(setup, str(setup["signed"]), str(setup["notarised"])), env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    denied = check(*with_access(setup, str(setup["unsigned"])), env=env)
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "[image-signatures]" in denied.stdout
    assert "no cosign signature found" in denied.stdout
    assert "image-signatures was not checked" not in denied.stdout + denied.stderr


def test_without_registry_access_nothing_is_asked_and_the_report_says_so(
    setup: dict[str, Path],
) -> None:
    done = check("--policy", str(setup["policy"]), str(setup["unsigned"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "image-signatures was not checked" in done.stdout + done.stderr
    assert "--registry-access" in done.stdout + done.stderr


def test_credentials_come_from_the_docker_config_or_the_flag(setup: dict[str, Path]) -> None:
    anonymous = check(
        *with_access(setup, str(setup["signed"])), env={"DOCKER_CONFIG": "/nonexistent"}
    )
    assert anonymous.returncode == 1
    assert "refused the credentials" in anonymous.stdout
    by_flag = check(
        *with_access(setup, str(setup["signed"])),
        "--registry-credentials", str(setup["docker"] / "config.json"),
    )  # fmt: skip
    assert by_flag.returncode == 0, by_flag.stdout + by_flag.stderr


def test_a_credentials_file_that_cannot_be_read_is_a_usage_error(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "config.json"
    broken.write_text('{"auths": {"registry.example": {"auth": "bm90LWEtcGFpcg=="}}}')
    done = check(*with_access(setup, str(setup["signed"])), "--registry-credentials", str(broken))
    assert done.returncode == 2
    assert "--registry-access cannot be set up" in done.stderr
    assert "bm90LWEtcGFpcg" not in done.stderr
