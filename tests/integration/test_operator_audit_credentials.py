"""The background audit asks registries with the running pod's own imagePullSecrets.

The operator runs against the real API server with ``registry_pod_pull_secrets`` and no
credentials file: the only credentials it can have for registry_support's registry (TLS with
its own CA, htpasswd) are those of the ``kubernetes.io/dockerconfigjson`` Secret made in the
test namespace, read with the operator's own client when a pod names it. The real cosign CLI
signs the digests. Pods are never scheduled: each test writes the kubelet's status, whose
``imageID`` names the digest that runs.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from mamori.findings import Violation
from mamori_operator.services import Services
from tests.integration.operator_support import Cluster, unique, wait_until
from tests.integration.registry_support import TestRegistry, running_registry

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
REPOSITORY = "team/pulled"
PASSWORD = "cosign key password"
SELECTOR = "mamori.io/audit-credentials-test"
SECRET = "regcred"
REFUSED = (
    "the registry refused the credentials (or anonymous access) (HTTP 401 without credentials)"
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def cosign_key(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registry.cosign_key_pair(tmp_path_factory.mktemp("cosign-key"), PASSWORD)


@pytest.fixture(scope="module")
def digests(registry: TestRegistry, cosign_key: Path) -> dict[str, str]:
    """Signed images, one per case, so that no case sees another's verified answer."""
    made = {}
    for tag in ("shared", "missing"):
        made[tag] = registry.push_image(REPOSITORY, tag, f"{tag} {RUN}")
        registry.cosign(
            "sign", "--key", "cosign.key", "--new-bundle-format=false",
            "--use-signing-config=false", "--tlog-upload=false", "--yes",
            f"{registry.address}/{REPOSITORY}@{made[tag]}",
            cwd=cosign_key.parent, password=PASSWORD,
        )  # fmt: skip
    return made


@pytest.fixture(scope="module")
def operator_overrides(registry: TestRegistry) -> dict[str, Any]:
    """The registry's CA and the pods' own Secrets; no credentials of the operator's own."""
    return {
        "registry_ca_file": registry.ca_file,
        "registry_pod_pull_secrets": True,
        "registry_timeout": 2.0,
        "registry_budget": 5.0,
    }


def docker_registry_secret(registry: TestRegistry) -> dict[str, Any]:
    """What ``kubectl create secret docker-registry`` makes for the registry."""
    pair = f"{registry.username}:{registry.password}".encode()
    entry = {
        "username": registry.username,
        "password": registry.password,
        "auth": base64.b64encode(pair).decode(),
    }
    config = json.dumps({"auths": {registry.address: entry}}).encode()
    return {
        "metadata": {"name": SECRET},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config).decode()},
    }


class Audited(NamedTuple):
    namespace: str
    policy: str
    repository: str


def running_pod(
    cluster: Cluster, audited: Audited, name: str, *, tag: str, digest: str, secrets: list[str]
) -> None:
    """A pod whose spec names the image by tag and whose container runs ``digest``."""
    namespace, repository = audited.namespace, audited.repository
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": f"{repository}:{tag}"}]}
    if secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in secrets]
    cluster.core.create_namespaced_pod(
        namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    )
    cluster.kubelet_reports(namespace, name, {"app": f"{repository}@{digest}"})


@pytest.fixture
def audited(
    cluster: Cluster,
    operator: Services,
    made: dict[str, list[str]],
    registry: TestRegistry,
    cosign_key: Path,
) -> Audited:
    """A namespace holding the registry's pull Secret, under a policy that audits signatures."""
    namespace = unique("pulled")
    cluster.create_namespace(namespace, {SELECTOR: namespace})
    made["namespaces"].append(namespace)
    cluster.core.create_namespaced_secret(namespace, docker_registry_secret(registry))
    name = unique("pulled")
    made["policies"].append(name)
    cluster.apply_policy(
        name,
        {
            "enforcement": "Audit",
            "podSecurity": "privileged",
            "namespaceSelector": {"matchLabels": {SELECTOR: namespace}},
            "imageSignatures": [
                {
                    "images": [f"{registry.address}/{REPOSITORY}"],
                    "cosign": {"publicKeys": [cosign_key.read_text()]},
                }
            ],
        },
    )
    return Audited(namespace, name, f"{registry.address}/{REPOSITORY}")


def verdicts(operator: Services, namespace: str, pods: set[str]) -> dict[str, list[Violation]]:
    """An audit pass's findings for ``pods``, once the operator knows the digest each runs."""

    def judged() -> dict[str, list[Violation]] | None:
        started = {
            record.name
            for record in operator.state.all_pods()
            if record.namespace == namespace and all(image.digest for image in record.images)
        }
        if not pods <= started:  # the kubelet's status not seen yet: it would ask about the tag
            return None
        seen = {name for ns, name in operator.auditor.audit() if ns == namespace}
        if not pods <= seen:
            return None
        found: dict[str, list[Violation]] = {name: [] for name in pods}
        for workload, violations in operator.auditor.workloads().get(namespace, {}).items():
            if workload.name in found:
                found[workload.name] = list(violations)
        return found

    return wait_until(judged, timeout=30, message=f"audit of {sorted(pods)} in {namespace}")


def test_a_pod_is_verified_with_its_secret_and_refused_without_it(
    cluster: Cluster, operator: Services, audited: Audited, digests: dict[str, str]
) -> None:
    namespace, shared = audited.namespace, digests["shared"]
    # first the pods that cannot read the registry: their refusals are kept for 30 s...
    running_pod(cluster, audited, "without-secret", tag="a", digest=shared, secrets=[])
    running_pod(
        cluster, audited, "missing-secret", tag="b", digest=digests["missing"],
        secrets=["no-such-secret"],
    )  # fmt: skip
    refused = verdicts(operator, namespace, {"without-secret", "missing-secret"})
    [without] = refused["without-secret"]
    assert without.rule == "image-signatures"
    assert shared in without.message
    assert "could not be checked" in without.message and REFUSED in without.message
    assert "imagePullSecrets:" not in without.message  # the pod names no Secret
    [missing] = refused["missing-secret"]
    assert REFUSED in missing.message
    assert (
        f'imagePullSecrets: Secret "no-such-secret" in namespace "{namespace}" does not exist'
        in missing.message
    )
    # ...and are not lent to a pod running the same digest with the Secret that reads it
    running_pod(cluster, audited, "with-secret", tag="c", digest=shared, secrets=[SECRET])
    judged = verdicts(operator, namespace, {"with-secret", "without-secret"})
    assert judged["with-secret"] == []
    assert [v.rule for v in judged["without-secret"]] == ["image-signatures"]


def test_the_policy_status_counts_only_the_pod_without_the_secret(
    cluster: Cluster, operator: Services, audited: Audited, digests: dict[str, str]
) -> None:
    running_pod(
        cluster, audited, "with-secret", tag="d", digest=digests["shared"], secrets=[SECRET]
    )
    running_pod(cluster, audited, "no-secret", tag="e", digest=digests["missing"], secrets=[])

    def offenders() -> list[dict[str, Any]] | None:
        status = cluster.policy(audited.policy).get("status") or {}
        if (status.get("pods") or {}).get("total") != 2 or not status["violations"]["pods"]:
            return None
        found: list[dict[str, Any]] = status["violations"]["offenders"]
        return found

    assert wait_until(offenders, timeout=30, message="the policy's status") == [
        {"namespace": audited.namespace, "name": "no-secret", "rules": ["image-signatures"]}
    ]
