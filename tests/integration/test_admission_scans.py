"""Scan-gated admission on the real API server: ImageScans written with kubectl decide pods.

The webhook runs as its own process on the cluster's policies (``--kubeconfig``), registered
for this module's namespaces only; the policy has ``spec.vulnerabilities``, so the webhook
follows ImageScans. Every digest is made up per run: no image is ever pulled (the control plane
has no kubelet to run pods), the API server only stores them.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_fixtures import Kubectl
from tests.helpers import wait_for
from tests.integration.operator_support import Cluster
from tests.integration.test_admission import registered, webhook_configuration
from tests.webhook.served import Pki, Served, start_webhook

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
SELECTOR = "mamori.io/admission-scans-test"
DENIED = 'admission webhook "validate.mamori.io" denied the request: mamori denied'
REPOSITORY = "registry.example/acme/api"


def digest() -> str:
    return "sha256:" + secrets.token_hex(32)


VULNERABLE, EXCEPTED, LAPSED, UNSCANNED, LATE = (digest() for _ in range(5))


def image_scan(of: str, finding: str) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ImageScan",
        "metadata": {"name": of.replace(":", "-", 1)},
        "spec": {
            "digest": of,
            "repository": REPOSITORY,
            "scanner": "trivy-0.58",
            "scannedAt": "2026-11-28T09:00:00Z",
            "summary": {"critical": 1},
            "findings": [{"id": finding, "severity": "CRITICAL", "package": "openssl"}],
        },
    }


def scan_policy() -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": f"scans-{RUN}"},
        "spec": {
            "enforcement": "Enforce",
            "podSecurity": "privileged",  # the scan gate alone decides
            "namespaceSelector": {"matchLabels": {SELECTOR: RUN}},
            "vulnerabilities": {
                "severityThreshold": "CRITICAL",
                "unscanned": "Warn",
                "exceptions": [
                    {
                        "vulnerability": "CVE-2026-2222",
                        "images": ["registry.example/acme"],
                        "expires": "2999-12-31",
                        "reason": "not reachable: the vulnerable code path is never loaded",
                    },
                    {
                        "vulnerability": "CVE-2026-3333",
                        "expires": "2026-01-01T00:00:00Z",
                        "reason": "fix was promised for the end of 2025",
                    },
                ],
            },
        },
    }


def pod(name: str, of: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": f"{REPOSITORY}@{of}"}]},
    }


def apply(kubectl: Kubectl, manifest: dict[str, Any], *extra: str, namespace: str = "") -> Any:
    where = ["-n", namespace] if namespace else []
    return kubectl("apply", *where, *extra, "-f", "-", input=json.dumps(manifest), check=False)


@pytest.fixture(scope="module")
def scans_webhook(
    cluster: Cluster, kubectl: Kubectl, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The ImageScans known before start, the policy, and a webhook on the cluster's policies."""
    known = ((VULNERABLE, "CVE-2026-1111"), (EXCEPTED, "CVE-2026-2222"), (LAPSED, "CVE-2026-3333"))
    for of, finding in known:
        written = apply(kubectl, image_scan(of, finding))
        assert written.returncode == 0, written.stderr
    policy = scan_policy()
    written = apply(kubectl, policy)
    assert written.returncode == 0, written.stderr
    directory = tmp_path_factory.mktemp("admission-scans")
    pki = Pki(directory)
    pki.write_initial()
    webhook = start_webhook(
        pki=pki, log_file=directory / "webhook.log", kubeconfig=Path(kubeconfig)
    )
    config = webhook_configuration(name=f"mamori-scans-{RUN}", webhook=webhook, selector_value=RUN)
    config["webhooks"][0]["namespaceSelector"] = {"matchLabels": {SELECTOR: RUN}}
    try:
        with registered(kubectl, config):
            yield webhook
    finally:
        assert webhook.stop() == 0, webhook.log()
        kubectl("delete", "clustersecuritypolicy", policy["metadata"]["name"], "--ignore-not-found")
        names = [of.replace(":", "-", 1) for of in (VULNERABLE, EXCEPTED, LAPSED, LATE)]
        kubectl("delete", "imagescan", *names, "--ignore-not-found")


@pytest.fixture(scope="module")
def gated(scans_webhook: Served, kubectl: Kubectl, make_namespace_module: str) -> str:
    """A namespace judged by the scan policy, once the webhook has it in force."""
    probe = pod("probe", VULNERABLE)
    wait_for(
        lambda: (
            DENIED
            in apply(kubectl, probe, "--dry-run=server", namespace=make_namespace_module).stderr
        ),
        timeout=60,
        interval=0.25,
        message="the scan policy in force",
    )
    return make_namespace_module


@pytest.fixture(scope="module")
def make_namespace_module(kubectl: Kubectl) -> Iterator[str]:
    name = f"scans-{RUN}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, f"{SELECTOR}={RUN}")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def exists(kubectl: Kubectl, namespace: str, name: str) -> bool:
    return kubectl("get", "-n", namespace, "pod", name, "-o", "name", check=False).returncode == 0


def test_a_critical_finding_is_denied_with_what_to_do(kubectl: Kubectl, gated: str) -> None:
    result = apply(kubectl, pod("vulnerable", VULNERABLE), namespace=gated)
    assert result.returncode == 1, result
    assert f'{DENIED} Pod "vulnerable"' in result.stderr
    assert "[image-vulnerabilities] spec.containers[0].image: " in result.stderr
    assert f"container \"app\" image '{REPOSITORY}@{VULNERABLE}'" in result.stderr
    assert "CVE-2026-1111 (CRITICAL)" in result.stderr
    assert "scanned by trivy-0.58" in result.stderr
    assert "rebuild the image on a patched base image" in result.stderr
    assert not exists(kubectl, gated, "vulnerable")


def test_an_excepted_finding_until_a_future_date_is_admitted(kubectl: Kubectl, gated: str) -> None:
    result = apply(kubectl, pod("excepted", EXCEPTED), namespace=gated)
    assert result.returncode == 0, result.stderr
    assert "Warning:" not in result.stderr
    assert exists(kubectl, gated, "excepted")


def test_an_expired_exception_no_longer_admits(kubectl: Kubectl, gated: str) -> None:
    result = apply(kubectl, pod("lapsed", LAPSED), namespace=gated)
    assert result.returncode == 1, result
    assert "CVE-2026-3333 (CRITICAL)" in result.stderr
    assert "the exception for CVE-2026-3333 expired (2026-01-01T00:00:00Z)" in result.stderr
    assert not exists(kubectl, gated, "lapsed")


def test_an_unscanned_image_under_warn_is_admitted_with_a_warning(
    kubectl: Kubectl, gated: str
) -> None:
    result = apply(kubectl, pod("unscanned", UNSCANNED), namespace=gated)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert any(
        "[image-vulnerabilities]" in line and f"{REPOSITORY}@{UNSCANNED}' has no scan" in line
        for line in warnings
    ), result.stderr
    assert exists(kubectl, gated, "unscanned")


def test_an_image_scan_written_after_start_is_seen(kubectl: Kubectl, gated: str) -> None:
    late = pod("late", LATE)
    before = apply(kubectl, late, "--dry-run=server", namespace=gated)
    assert before.returncode == 0 and "no ImageScan" in before.stderr, before
    assert apply(kubectl, image_scan(LATE, "CVE-2026-4444")).returncode == 0

    def denied() -> Any:
        done = apply(kubectl, late, "--dry-run=server", namespace=gated)
        return done if done.returncode == 1 else None

    result = wait_for(denied, timeout=30, interval=0.25, message="the new ImageScan seen")
    assert "CVE-2026-4444 (CRITICAL)" in result.stderr
