"""Signed images at admission: the real API server calls the webhook, which asks the real registry.

The registry is registry_support's (TLS with its own CA, htpasswd); the real cosign and notation
CLIs sign fresh keys' signatures into it; the webhook runs as its own process on the cluster's
policies with the registry's CA and a dockerconfigjson credentials file, as the chart mounts
them. Every pod names images in that registry by tag or digest; nothing is pulled (the control
plane has no kubelet), so what decides is the signature of the digest the tag points to when
the pod is created.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_fixtures import Kubectl
from tests.helpers import wait_for
from tests.integration.operator_support import Cluster
from tests.integration.registry_support import NotationSigner, TestRegistry, running_registry
from tests.integration.test_admission import registered, webhook_configuration
from tests.webhook.served import Pki, Served, metric, start_webhook

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
SELECTOR = "mamori.io/admission-signatures-test"
DENIED = 'admission webhook "validate.mamori.io" denied the request: mamori denied'
COSIGNED = "team/cosigned"  # requirement: our cosign key
NOTARISED = "team/notarised"  # requirement: our Notation root
PASSWORD = "cosign key password"
REGISTRY_BUDGET = 2.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def cosign_keys(
    registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Two cosign key pairs: ``ours`` (the policy lists it) and ``theirs`` (it does not)."""
    base = tmp_path_factory.mktemp("cosign-keys")
    return {name: registry.cosign_key_pair(base / name, PASSWORD) for name in ("ours", "theirs")}


@pytest.fixture(scope="module")
def notation_signers(
    registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, NotationSigner]:
    """Two Notation test signers, each its own self-signed root: ``ours`` is trusted."""
    base = tmp_path_factory.mktemp("notation")
    return {
        name: registry.notation_test_signer(base / name, f"mamori-{name}")
        for name in ("ours", "theirs")
    }


def sign_cosign_legacy(registry: TestRegistry, key: Path, image: str) -> None:
    registry.cosign(
        "sign", "--key", "cosign.key", "--new-bundle-format=false",
        "--use-signing-config=false", "--tlog-upload=false", "--yes", image,
        cwd=key.parent, password=PASSWORD,
    )  # fmt: skip


def sign_cosign_bundle(registry: TestRegistry, key: Path, image: str) -> None:
    config = key.parent / "signing-config.json"
    if not config.exists():
        registry.cosign("signing-config", "create", "--out", str(config), cwd=key.parent)
    registry.cosign(
        "sign", "--key", "cosign.key", "--signing-config", str(config), "--yes", image,
        cwd=key.parent, password=PASSWORD,
    )  # fmt: skip


class Images:
    """The images of this module's cases, pushed and signed once: name → tag reference."""

    def __init__(self, registry: TestRegistry) -> None:
        self.registry = registry
        self.digests: dict[str, str] = {}

    def push(self, repository: str, tag: str) -> str:
        digest = self.registry.push_image(repository, tag, f"{repository}:{tag} {RUN}")
        self.digests[f"{repository}:{tag}"] = digest
        return digest

    def tagged(self, repository: str, tag: str) -> str:
        return f"{self.registry.address}/{repository}:{tag}"

    def pinned(self, repository: str, tag: str) -> str:
        return f"{self.registry.address}/{repository}@{self.digests[f'{repository}:{tag}']}"


@pytest.fixture(scope="module")
def images(
    registry: TestRegistry,
    cosign_keys: dict[str, Path],
    notation_signers: dict[str, NotationSigner],
) -> Images:
    made = Images(registry)
    for tag in ("legacy", "bundle", "unsigned", "theirs", "moved", "tampered", "pinned"):
        made.push(COSIGNED, tag)
    sign_cosign_legacy(registry, cosign_keys["ours"], made.pinned(COSIGNED, "legacy"))
    sign_cosign_bundle(registry, cosign_keys["ours"], made.pinned(COSIGNED, "bundle"))
    sign_cosign_legacy(registry, cosign_keys["theirs"], made.pinned(COSIGNED, "theirs"))
    sign_cosign_legacy(registry, cosign_keys["ours"], made.pinned(COSIGNED, "pinned"))
    # "moved": signed, then the tag is pointed at the unsigned digest
    sign_cosign_legacy(registry, cosign_keys["ours"], made.pinned(COSIGNED, "moved"))
    registry.move_tag(COSIGNED, "moved", made.digests[f"{COSIGNED}:unsigned"])
    # "tampered": the legacy signature of "legacy" copied onto the digest of "tampered"
    signature_of_legacy = f"sha256-{made.digests[f'{COSIGNED}:legacy'].removeprefix('sha256:')}.sig"
    tampered_tag = f"sha256-{made.digests[f'{COSIGNED}:tampered'].removeprefix('sha256:')}.sig"
    registry.crane("tag", f"{registry.address}/{COSIGNED}:{signature_of_legacy}", tampered_tag)
    for tag in ("jws", "cose", "theirs", "unsigned"):
        made.push(NOTARISED, tag)
    registry.notation_sign(notation_signers["ours"], made.pinned(NOTARISED, "jws"))
    registry.notation_sign(
        notation_signers["ours"], made.pinned(NOTARISED, "cose"), signature_format="cose"
    )
    registry.notation_sign(notation_signers["theirs"], made.pinned(NOTARISED, "theirs"))
    return made


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then closed): a registry that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DOWN_PORT = closed_loopback_port()


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A loopback port that takes connections and never says a word: a registry that hangs
    (the kernel completes the TCP handshake; the TLS handshake then waits forever)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield int(silent.getsockname()[1])


def signature_policy(
    registry: TestRegistry,
    cosign_keys: dict[str, Path],
    notation_signers: dict[str, NotationSigner],
    *,
    name: str,
    enforcement: str,
    selector_value: str,
    silent_port: int,
) -> dict[str, Any]:
    ours = cosign_keys["ours"].read_text()
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": name},
        "spec": {
            "enforcement": enforcement,
            "podSecurity": "privileged",  # the signature rule alone decides
            "namespaceSelector": {"matchLabels": {SELECTOR: selector_value}},
            "imageSignatures": [
                {"images": [f"{registry.address}/{COSIGNED}"], "cosign": {"publicKeys": [ours]}},
                {
                    "images": [f"{registry.address}/{NOTARISED}"],
                    "notation": {
                        "trustedCertificates": [notation_signers["ours"].certificates.read_text()],
                    },
                },
                {"images": [f"127.0.0.1:{DOWN_PORT}"], "cosign": {"publicKeys": [ours]}},
                {"images": [f"127.0.0.1:{silent_port}"], "cosign": {"publicKeys": [ours]}},
            ],
        },
    }


def pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def apply(kubectl: Kubectl, manifest: dict[str, Any], *extra: str, namespace: str = "") -> Any:
    where = ["-n", namespace] if namespace else []
    return kubectl("apply", *where, *extra, "-f", "-", input=json.dumps(manifest), check=False)


def credentials_file(registry: TestRegistry, directory: Path) -> Path:
    """What ``kubectl create secret docker-registry`` puts in ``.dockerconfigjson``."""
    pair = f"{registry.username}:{registry.password}".encode()
    config = {
        "auths": {
            registry.address: {
                "username": registry.username,
                "password": registry.password,
                "auth": base64.b64encode(pair).decode(),
            }
        }
    }
    path = directory / "dockerconfig.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def signatures_webhook(
    cluster: Cluster,
    kubectl: Kubectl,
    kubeconfig: Path,
    registry: TestRegistry,
    cosign_keys: dict[str, Path],
    notation_signers: dict[str, NotationSigner],
    images: Images,
    silent_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    policies = [
        signature_policy(
            registry, cosign_keys, notation_signers,
            name=f"signatures-{RUN}", enforcement="Enforce", selector_value=f"enforce-{RUN}",
            silent_port=silent_port,
        ),
        signature_policy(
            registry, cosign_keys, notation_signers,
            name=f"signatures-warn-{RUN}", enforcement="Warn", selector_value=f"warn-{RUN}",
            silent_port=silent_port,
        ),
    ]  # fmt: skip
    for policy in policies:
        written = apply(kubectl, policy)
        assert written.returncode == 0, written.stderr
    directory = tmp_path_factory.mktemp("admission-signatures")
    pki = Pki(directory)
    pki.write_initial()
    webhook = start_webhook(
        pki=pki,
        log_file=directory / "webhook.log",
        kubeconfig=Path(kubeconfig),
        extra=[
            "--registry-ca-file", str(registry.ca_file),
            "--registry-credentials", str(credentials_file(registry, directory)),
            "--registry-budget", str(REGISTRY_BUDGET),
            "--registry-timeout", "1",
        ],
    )  # fmt: skip
    config = webhook_configuration(
        name=f"mamori-signatures-{RUN}", webhook=webhook, selector_value=RUN
    )
    config["webhooks"][0]["namespaceSelector"] = {
        "matchExpressions": [
            {"key": SELECTOR, "operator": "In", "values": [f"enforce-{RUN}", f"warn-{RUN}"]}
        ]
    }
    try:
        with registered(kubectl, config):
            yield webhook
    finally:
        assert webhook.stop() == 0, webhook.log()
        for policy in policies:
            kubectl(
                "delete", "clustersecuritypolicy", policy["metadata"]["name"], "--ignore-not-found"
            )


@contextmanager
def namespace_for(kubectl: Kubectl, mode: str) -> Iterator[str]:
    name = f"signatures-{mode}-{RUN}"
    kubectl("create", "namespace", name)
    try:
        kubectl("label", "namespace", name, f"{SELECTOR}={mode}-{RUN}")
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def in_force(kubectl: Kubectl, namespace: str, probe: dict[str, Any], expect: str) -> None:
    """The API server and the webhook pick up a new configuration and policy a moment later."""
    wait_for(
        lambda: expect in apply(kubectl, probe, "--dry-run=server", namespace=namespace).stderr,
        timeout=60,
        interval=0.25,
        message=f"{expect!r} in the answer in {namespace}",
    )


@pytest.fixture(scope="module")
def enforced(signatures_webhook: Served, kubectl: Kubectl, images: Images) -> Iterator[str]:
    """A namespace under the Enforce policy, once the webhook has it in force."""
    with namespace_for(kubectl, "enforce") as name:
        in_force(kubectl, name, pod("probe", images.tagged(COSIGNED, "unsigned")), DENIED)
        yield name


@pytest.fixture(scope="module")
def warned(signatures_webhook: Served, kubectl: Kubectl, images: Images) -> Iterator[str]:
    """A namespace under the Warn policy, once the webhook has it in force."""
    with namespace_for(kubectl, "warn") as name:
        in_force(kubectl, name, pod("probe", images.tagged(COSIGNED, "unsigned")), "Warning:")
        yield name


def exists(kubectl: Kubectl, namespace: str, name: str) -> bool:
    return kubectl("get", "-n", namespace, "pod", name, "-o", "name", check=False).returncode == 0


ADMITTED = [
    ("cosign-legacy", COSIGNED, "legacy", "tagged"),
    ("cosign-bundle", COSIGNED, "bundle", "tagged"),
    ("cosign-by-digest", COSIGNED, "pinned", "pinned"),
    ("notation-jws", NOTARISED, "jws", "tagged"),
    ("notation-cose", NOTARISED, "cose", "tagged"),
]


@pytest.mark.parametrize(("name", "repository", "tag", "form"), ADMITTED)
def test_a_signed_image_is_admitted(
    kubectl: Kubectl, images: Images, enforced: str, name: str, repository: str, tag: str, form: str
) -> None:
    image = getattr(images, form)(repository, tag)
    result = apply(kubectl, pod(name, image), namespace=enforced)
    assert result.returncode == 0, result.stderr
    assert "Warning:" not in result.stderr
    assert exists(kubectl, enforced, name)


DENIED_CASES = [
    ("unsigned", COSIGNED, "unsigned", "no cosign signature found"),
    ("cosign-theirs", COSIGNED, "theirs", "none by a trusted key or certificate"),
    ("tag-moved", COSIGNED, "moved", "no cosign signature found"),
    ("tampered", COSIGNED, "tampered", "a valid signature names another image"),
    ("notation-unsigned", NOTARISED, "unsigned", "no Notation signature found"),
    ("notation-theirs", NOTARISED, "theirs", "none by a trusted key or certificate"),
]


@pytest.mark.parametrize(("name", "repository", "tag", "reason"), DENIED_CASES)
def test_an_image_not_signed_as_required_is_denied_naming_digest_and_reason(
    kubectl: Kubectl,
    images: Images,
    enforced: str,
    name: str,
    repository: str,
    tag: str,
    reason: str,
) -> None:
    image = images.tagged(repository, tag)
    judged = images.registry.digest(repository, tag)  # what the tag points to now
    result = apply(kubectl, pod(name, image), namespace=enforced)
    assert result.returncode == 1, result
    assert f'{DENIED} Pod "{name}"' in result.stderr
    assert "[image-signatures] spec.containers[0].image: " in result.stderr
    assert f"container \"app\" image '{image}': " in result.stderr
    assert f"requires a signature of digest {judged}, what its tag points to now" in result.stderr
    assert reason in result.stderr
    assert "sign the digest with a key or certificate the policy trusts" in result.stderr
    assert not exists(kubectl, enforced, name)


def test_a_tag_moved_to_an_unsigned_digest_is_judged_on_the_new_digest(
    kubectl: Kubectl, images: Images, enforced: str
) -> None:
    signed = images.digests[f"{COSIGNED}:moved"]
    unsigned = images.digests[f"{COSIGNED}:unsigned"]
    result = apply(
        kubectl, pod("moved-again", images.tagged(COSIGNED, "moved")), namespace=enforced
    )
    assert result.returncode == 1, result
    assert f"digest {unsigned}, what its tag points to now" in result.stderr
    assert signed not in result.stderr


def test_a_registry_that_is_down_denies_within_the_budget(kubectl: Kubectl, enforced: str) -> None:
    image = f"127.0.0.1:{DOWN_PORT}/team/app:1.0"
    started = time.monotonic()
    result = apply(kubectl, pod("down", image), namespace=enforced)
    took = time.monotonic() - started
    assert result.returncode == 1, result
    assert "[image-signatures]" in result.stderr
    assert "could not be resolved to a digest" in result.stderr
    assert "the registry is unreachable or failing (ConnectionRefusedError)" in result.stderr
    assert took < REGISTRY_BUDGET + 5, f"kubectl apply took {took:.1f}s"


def test_a_registry_that_hangs_denies_at_the_deadline(
    kubectl: Kubectl, enforced: str, silent_port: int
) -> None:
    image = f"127.0.0.1:{silent_port}/team/app:1.0"
    started = time.monotonic()
    result = apply(kubectl, pod("hangs", image), namespace=enforced)
    took = time.monotonic() - started
    assert result.returncode == 1, result
    assert "the registry did not answer within the deadline (1s)" in result.stderr
    assert 1.0 <= took < REGISTRY_BUDGET + 5, f"kubectl apply took {took:.1f}s"


def test_under_warn_an_unsigned_image_is_admitted_with_the_reason_as_a_warning(
    kubectl: Kubectl, images: Images, warned: str
) -> None:
    image = images.tagged(COSIGNED, "unsigned")
    result = apply(kubectl, pod("warned", image), namespace=warned)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert any(
        "[image-signatures]" in line and "no cosign signature found" in line for line in warnings
    ), result.stderr
    assert exists(kubectl, warned, "warned")


class RegistryFigures:
    """The webhook's registry series, scraped once (summed over its workers)."""

    def __init__(self, webhook: Served) -> None:
        text = webhook.session().get(f"{webhook.url}/metrics", timeout=5).text
        self.kept = metric(text, "mamori_webhook_registry_images_total", answer="kept")
        self.asked = metric(text, "mamori_webhook_registry_images_total", answer="asked")
        self.calls = metric(text, "mamori_webhook_registry_calls_total")
        self.waits = metric(text, "mamori_webhook_registry_wait_seconds_count")


def test_the_webhook_counts_kept_and_asked_registry_answers(
    kubectl: Kubectl, images: Images, enforced: str, signatures_webhook: Served
) -> None:
    before = RegistryFigures(signatures_webhook)
    signed = pod("counted", images.pinned(COSIGNED, "legacy"))
    down = pod("counted-down", f"127.0.0.1:{DOWN_PORT}/team/app:1.0")

    def kept_answers_counted() -> bool:
        assert apply(kubectl, signed, "--dry-run=server", namespace=enforced).returncode == 0
        # a review that asks (a registry that is down is never kept) writes the kept ones out
        assert apply(kubectl, down, "--dry-run=server", namespace=enforced).returncode == 1
        return RegistryFigures(signatures_webhook).kept > before.kept

    wait_for(kept_answers_counted, timeout=60, interval=0.5, message="kept answers counted")
    after = RegistryFigures(signatures_webhook)
    assert after.asked > before.asked
    assert after.calls > before.calls  # the refused connection was a question asked
    assert after.waits > before.waits
