"""The background audit judges signatures and scans of what running pods run (issue 10).

The operator runs against the real API server with access to the real registry of
registry_support (TLS with its own CA, htpasswd, credentials from a dockerconfigjson file, as
the chart mounts them); the real cosign CLI signs one digest. Pods are never scheduled here, so
each test writes the kubelet's status itself: the ``imageID`` names the digest that runs, which
is what the audit judges, whatever the tag in the spec points to now.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from mamori_operator.services import Services
from tests.integration.operator_support import Cluster, fake_digest, unique, wait_until
from tests.integration.registry_support import TestRegistry, running_registry

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
REPOSITORY = "team/audited"
PASSWORD = "cosign key password"
SELECTOR = "mamori.io/audit-evidence-test"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def cosign_key(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The public key of a fresh cosign key pair (the private one lies next to it)."""
    return registry.cosign_key_pair(tmp_path_factory.mktemp("cosign-key"), PASSWORD)


@pytest.fixture(scope="module")
def digests(registry: TestRegistry, cosign_key: Path) -> dict[str, str]:
    """Two images pushed to the registry: "signed" (by cosign_key) and "unsigned"."""
    made = {
        tag: registry.push_image(REPOSITORY, tag, f"{tag} {RUN}") for tag in ("signed", "unsigned")
    }
    registry.cosign(
        "sign", "--key", "cosign.key", "--new-bundle-format=false",
        "--use-signing-config=false", "--tlog-upload=false", "--yes",
        f"{registry.address}/{REPOSITORY}@{made['signed']}",
        cwd=cosign_key.parent, password=PASSWORD,
    )  # fmt: skip
    return made


@pytest.fixture(scope="module")
def operator_overrides(
    registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The operator trusts the registry's CA and holds its credentials, as the chart mounts them."""
    pair = f"{registry.username}:{registry.password}".encode()
    credentials = tmp_path_factory.mktemp("operator-registry") / "dockerconfig.json"
    credentials.write_text(
        json.dumps({"auths": {registry.address: {"auth": base64.b64encode(pair).decode()}}})
    )
    return {
        "registry_ca_file": registry.ca_file,
        "registry_credentials": credentials,
        "registry_timeout": 2.0,
        "registry_budget": 5.0,
    }


def status_when(
    cluster: Cluster, name: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The policy's status once ``check`` holds for it (the last one seen on timeout)."""

    def settled() -> dict[str, Any]:
        status = cluster.policy(name).get("status") or {}
        return status if status.get("observedGeneration") and check(status) else {}

    try:
        return wait_until(settled, timeout=30, message=f"status of {name}")
    except AssertionError as error:
        raise AssertionError(f"{error}; status is {cluster.policy(name).get('status')}") from None


def audited_namespace(cluster: Cluster, made: dict[str, list[str]]) -> str:
    namespace = unique("evidence")
    cluster.create_namespace(namespace, {SELECTOR: namespace})
    made["namespaces"].append(namespace)
    return namespace


def test_running_pods_are_judged_by_the_signature_of_the_digest_they_run(
    cluster: Cluster,
    operator: Services,
    made: dict[str, list[str]],
    registry: TestRegistry,
    cosign_key: Path,
    digests: dict[str, str],
) -> None:
    ns = audited_namespace(cluster, made)
    repository = f"{registry.address}/{REPOSITORY}"
    # Each spec's tag points to the other digest: the tags moved after the pods started, so
    # only the kubelet's imageID tells what runs.
    cluster.create_pod(ns, "runs-unsigned", {"app": f"{repository}:signed"}, security="")
    cluster.kubelet_reports(ns, "runs-unsigned", {"app": f"{repository}@{digests['unsigned']}"})
    cluster.create_pod(ns, "runs-signed", {"app": f"{repository}:unsigned"}, security="")
    cluster.kubelet_reports(ns, "runs-signed", {"app": f"{repository}@{digests['signed']}"})
    name = unique("signed")
    made["policies"].append(name)
    cluster.apply_policy(
        name,
        {
            "enforcement": "Audit",
            "podSecurity": "privileged",
            "namespaceSelector": {"matchLabels": {SELECTOR: ns}},
            "imageSignatures": [
                {"images": [repository], "cosign": {"publicKeys": [cosign_key.read_text()]}}
            ],
        },
    )

    status = status_when(cluster, name, lambda s: s["violations"]["pods"] >= 1)
    assert status["violations"] == {
        "pods": 1,
        "byRule": {"image-signatures": 1},
        "offenders": [{"namespace": ns, "name": "runs-unsigned", "rules": ["image-signatures"]}],
    }
    assert status["pods"]["total"] == 2
    # the message names the digest that runs and why it is refused
    [violation] = next(iter(operator.auditor.workloads()[ns].values()))
    assert digests["unsigned"] in violation.message
    assert "no cosign signature found" in violation.message


def test_a_newly_written_imagescan_with_a_critical_finding_shows_in_the_status(
    cluster: Cluster, operator: Services, made: dict[str, list[str]]
) -> None:
    ns = audited_namespace(cluster, made)
    digest = fake_digest(ns)
    image = f"registry.example/api@{digest}"
    cluster.create_pod(ns, "api", {"app": image}, security="")
    cluster.kubelet_reports(ns, "api", {"app": image})
    name = unique("scanned")
    made["policies"].append(name)
    cluster.apply_policy(
        name,
        {
            "enforcement": "Audit",
            "podSecurity": "privileged",
            "namespaceSelector": {"matchLabels": {SELECTOR: ns}},
            "vulnerabilities": {"severityThreshold": "CRITICAL", "unscanned": "Allow"},
        },
    )
    status_when(cluster, name, lambda s: s["pods"]["total"] == 1 and s["violations"]["pods"] == 0)
    try:
        cluster.write_image_scan(
            digest,
            {
                "scanner": "trivy-ci",
                "scannedAt": "2026-02-02T02:02:02Z",
                "summary": {"critical": 1},
                "findings": [{"id": "CVE-2026-4242", "severity": "CRITICAL"}],
            },
        )
        status = status_when(cluster, name, lambda s: s["violations"]["pods"] == 1)
        assert status["violations"]["byRule"] == {"image-vulnerabilities": 1}
        assert status["violations"]["offenders"] == [
            {"namespace": ns, "name": "api", "rules": ["image-vulnerabilities"]}
        ]
    finally:
        try:
            cluster.custom.delete_cluster_custom_object(
                "mamori.io", "v1alpha1", "imagescans", digest.replace(":", "-")
            )
        except ApiException as error:
            if error.status != 404:
                raise
