"""Pods annotated from Amazon ECR scan findings, served by moto in server mode on loopback.

moto runs as its own process (``python -m moto.server``) with IAM authentication switched on, so
every call is a signed HTTP request checked against IAM users and policies: the operator's user
may describe scan findings until a test attaches an explicit Deny, which yields a real
AccessDenied. Scan results are seeded through moto's documented ``scan-finding-results`` API.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from mamori_operator.scanning.model import Outcome
from mamori_operator.scanning.providers.base import ScanTarget
from mamori_operator.scanning.providers.ecr import EcrProvider
from mamori_operator.services import Services
from tests.aws_support import moto_server
from tests.integration.operator_support import (
    Cluster,
    condition,
    fake_digest,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
REPOSITORY = "shop/web"
DENY_POLICY = "deny-scan-findings"


@dataclass
class Moto:
    url: str
    admin: boto3.session.Session
    operator_key: tuple[str, str]

    def client(self, service: str) -> Any:
        return self.admin.client(service, endpoint_url=self.url, region_name=REGION)

    def push_image(self, tag: str) -> str:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": tag,
            },
            # moto derives the image digest from the layer digests: one unique layer per image
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1,
                    "digest": fake_digest(tag),
                }
            ],
        }
        response = self.client("ecr").put_image(
            repositoryName=REPOSITORY, imageManifest=json.dumps(manifest), imageTag=tag
        )
        return str(response["image"]["imageId"]["imageDigest"])

    def scan(self, digest: str, *, status: str = "COMPLETE", **findings: Any) -> None:
        """Start a scan and tell moto what DescribeImageScanFindings returns for the digest."""
        self.client("ecr").start_image_scan(
            repositoryName=REPOSITORY, imageId={"imageDigest": digest}
        )
        result: dict[str, Any] = {
            "registryId": ACCOUNT,
            "repositoryName": REPOSITORY,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": status, "description": status.lower()},
        }
        if status in ("COMPLETE", "ACTIVE"):
            result["imageScanFindings"] = {"imageScanCompletedAt": 1767225600, **findings}
        self._post(
            "/moto-api/static/ecr/scan-finding-results", {"results": [result], "region": REGION}
        )

    def clean_image(self, prefix: str) -> tuple[str, str]:
        """Push a new image (tag ``prefix-…``) whose finished scan found nothing: (tag, digest)."""
        tag = unique(prefix)
        digest = self.push_image(tag)
        self.scan(digest, findingSeverityCounts={})
        return tag, digest

    def deny_operator(self, deny: bool) -> None:
        iam = self.client("iam")
        if deny:
            iam.put_user_policy(
                UserName="mamori-operator",
                PolicyName=DENY_POLICY,
                PolicyDocument=_policy("Deny", "ecr:DescribeImageScanFindings"),
            )
        else:
            iam.delete_user_policy(UserName="mamori-operator", PolicyName=DENY_POLICY)

    def _post(self, path: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 201)


def _policy(effect: str, action: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": effect, "Action": action, "Resource": "*"}],
        }
    )


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log_path, region=REGION) as server:
        url = server.url
        bootstrap = boto3.session.Session(aws_access_key_id="boot", aws_secret_access_key="boot")
        iam = bootstrap.client("iam", endpoint_url=url, region_name=REGION)
        keys = {}
        for user, action in (("seeder", "*"), ("mamori-operator", "ecr:Describe*")):
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user, PolicyName="allow", PolicyDocument=_policy("Allow", action)
            )
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        admin = boto3.session.Session(
            aws_access_key_id=keys["seeder"][0], aws_secret_access_key=keys["seeder"][1]
        )
        result = Moto(url=url, admin=admin, operator_key=keys["mamori-operator"])
        result._post("/moto-api/reset-auth", b"0")  # from here on, IAM decides
        result.client("ecr").create_repository(repositoryName=REPOSITORY)
        yield result


@pytest.fixture(scope="module")
def aws_environment(moto: Moto) -> Iterator[None]:
    """The operator's default credential chain finds the operator user, and nothing else."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", moto.operator_key[0])
        patch.setenv("AWS_SECRET_ACCESS_KEY", moto.operator_key[1])
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        for name in (
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def operator_overrides(moto: Moto, aws_environment: None) -> dict[str, Any]:
    """The operator asks moto, with few retries so that denied calls surface quickly."""
    return {"ecr_endpoint_url": moto.url, "aws_max_attempts": 2}


@pytest.fixture(scope="module")
def policy(cluster: Cluster, operator: Services) -> Iterator[tuple[str, str]]:
    """One scanning policy for the module; tests label their namespaces with its label."""
    name, label = unique("ecr"), unique("ecr")
    cluster.apply_policy(
        name,
        {
            "namespaceSelector": {"matchLabels": {"mamori-test": label}},
            "imageScan": {"providers": ["ecr"], "severityThreshold": "HIGH"},
        },
    )
    yield name, label
    cluster.delete_policy(name)


@pytest.fixture
def namespace(cluster: Cluster, policy: tuple[str, str]) -> Iterator[str]:
    name = unique("ecr")
    cluster.create_namespace(name, {"mamori-test": policy[1]})
    yield name
    cluster.delete_namespace(name)


def run_pod(cluster: Cluster, namespace: str, digest: str, tag: str) -> str:
    name = unique("web")
    cluster.create_pod(namespace, name, {"app": f"{REGISTRY}/{REPOSITORY}:{tag}"})
    cluster.kubelet_reports(namespace, name, {"app": f"{REGISTRY}/{REPOSITORY}@{digest}"})
    return name


def test_clean_image(cluster: Cluster, moto: Moto, operator: Services, namespace: str) -> None:
    tag = unique("clean")
    digest = moto.push_image(tag)
    moto.scan(
        digest,
        findingSeverityCounts={"LOW": 2},
        findings=[
            {
                "name": "CVE-2026-0001",
                "severity": "LOW",
                "attributes": [
                    {"key": "package_name", "value": "zlib"},
                    {"key": "package_version", "value": "1.3"},
                ],
            }
        ],
    )
    pod = run_pod(cluster, namespace, digest, tag)

    annotations = cluster.wait_for_scan_status(namespace, pod, "clean")
    assert json.loads(annotations["mamori.io/scan-summary"])["low"] == 2
    assert annotations["mamori.io/scanned-at"] == "2026-01-01T00:00:00Z"
    scan = wait_until(lambda: cluster.image_scan(digest.replace(":", "-")))
    assert scan["spec"]["scanner"] == "ecr-basic"
    assert scan["spec"]["repository"] == f"{REGISTRY}/{REPOSITORY}"
    assert scan["spec"]["findings"][0]["package"] == "zlib"
    assert scan["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mamori"


def test_vulnerable_image_gets_annotations_event_and_details(
    cluster: Cluster, moto: Moto, operator: Services, namespace: str
) -> None:
    tag = unique("vuln")
    digest = moto.push_image(tag)
    moto.scan(
        digest,
        status="ACTIVE",  # enhanced scanning (Amazon Inspector) reports continuously
        findingSeverityCounts={"CRITICAL": 1, "MEDIUM": 3},
        enhancedFindings=[
            {
                "severity": "CRITICAL",
                "packageVulnerabilityDetails": {
                    "vulnerabilityId": "CVE-2026-9999",
                    "vulnerablePackages": [
                        {"name": "openssl", "version": "3.0.1", "fixedInVersion": "3.0.9"}
                    ],
                },
            }
        ],
    )
    pod = run_pod(cluster, namespace, digest, tag)

    annotations = cluster.wait_for_scan_status(namespace, pod, "vulnerable")
    summary = json.loads(annotations["mamori.io/scan-summary"])
    assert (summary["critical"], summary["medium"]) == (1, 3)
    scan = wait_until(lambda: cluster.image_scan(digest.replace(":", "-")))
    assert scan["spec"]["scanner"] == "ecr-enhanced"
    assert scan["spec"]["findings"][0] == {
        "id": "CVE-2026-9999",
        "severity": "CRITICAL",
        "package": "openssl",
        "installedVersion": "3.0.1",
        "fixedVersion": "3.0.9",
    }
    events = wait_until(lambda: cluster.events_about(namespace, pod))
    assert events[0].reason == "VulnerableImage"
    assert digest in events[0].message


def test_scan_in_progress_is_pending(
    cluster: Cluster, moto: Moto, operator: Services, namespace: str
) -> None:
    tag = unique("busy")
    digest = moto.push_image(tag)
    moto.scan(digest, status="IN_PROGRESS")
    pod = run_pod(cluster, namespace, digest, tag)
    cluster.wait_for_scan_status(namespace, pod, "pending")
    assert cluster.image_scan(digest.replace(":", "-")) is None


def test_never_scanned_image_is_unscanned(
    cluster: Cluster, moto: Moto, operator: Services, namespace: str
) -> None:
    tag = unique("new")
    digest = moto.push_image(tag)  # no scan started: ScanNotFoundException
    pod = run_pod(cluster, namespace, digest, tag)
    annotations = cluster.wait_for_scan_status(namespace, pod, "unscanned")
    assert "mamori.io/scanned-at" not in annotations


def test_pod_is_pending_until_the_kubelet_reports_a_digest(
    cluster: Cluster, moto: Moto, operator: Services, namespace: str
) -> None:
    tag, digest = moto.clean_image("later")
    name = unique("web")
    cluster.create_pod(namespace, name, {"app": f"{REGISTRY}/{REPOSITORY}:{tag}"})
    cluster.wait_for_scan_status(namespace, name, "pending")
    cluster.kubelet_reports(namespace, name, {"app": f"{REGISTRY}/{REPOSITORY}@{digest}"})
    cluster.wait_for_scan_status(namespace, name, "clean")


def test_access_denied_marks_the_provider_not_ready_until_allowed_again(
    cluster: Cluster, moto: Moto, operator: Services, namespace: str, policy: tuple[str, str]
) -> None:
    moto.deny_operator(True)
    try:
        tag, digest = moto.clean_image("denied")
        pod = run_pod(cluster, namespace, digest, tag)
        cluster.wait_for_scan_status(namespace, pod, "error")
        status = wait_until(
            lambda: (
                condition(cluster.policy(policy[0]), "ScanProviderReady").get("status") == "False"
                and cluster.policy(policy[0])
            )
        )
        scan_ready = condition(status, "ScanProviderReady")
        assert scan_ready["reason"] == "AccessDenied"
        assert "ecr:" in scan_ready["message"] and "not authorized" in scan_ready["message"]
        assert condition(status, "Ready")["status"] == "False"
    finally:
        moto.deny_operator(False)

    tag, digest = moto.clean_image("allowed")
    pod = run_pod(cluster, namespace, digest, tag)
    cluster.wait_for_scan_status(namespace, pod, "clean")
    wait_until(
        lambda: condition(cluster.policy(policy[0]), "ScanProviderReady").get("status") == "True"
    )


def test_pod_event_costs_at_most_one_api_call(
    cluster: Cluster, moto: Moto, operator: Services, namespace: str
) -> None:
    tag, digest = moto.clean_image("cost")
    first = run_pod(cluster, namespace, digest, tag)
    cluster.wait_for_scan_status(namespace, first, "clean")

    def counters() -> dict[str, float]:
        calls = {
            resource: operator.metrics.api_requests.labels(
                verb=verb, resource=resource
            )._value.get()
            for verb, resource in (("patch", "pods"), ("patch", "imagescans"), ("post", "events"))
        }
        return {
            **calls,
            "pod_events": operator.metrics.pod_events._value.get(),
            "ecr": _ecr_lookups(operator),
        }

    before = counters()
    pods = [run_pod(cluster, namespace, digest, tag) for _ in range(3)]
    for pod in pods:
        cluster.wait_for_scan_status(namespace, pod, "clean")
    after = counters()
    delta = {key: after[key] - before[key] for key in after}
    # per pod: created (→ pending) and kubelet status (→ clean), plus our patches echoed back
    assert delta["pod_events"] >= 3 * 3
    assert 3 * 2 <= delta["pods"] <= delta["pod_events"]  # at most one patch per event
    settled = [(p.namespace, p.name) for p in operator.state.all_pods() if p.namespace == namespace]
    assert operator.scanner.refresh_pods(settled) == 0  # nothing left to write: no rewrite loop
    assert delta["ecr"] == 0  # the digest's result is cached
    assert delta["imagescans"] == 0 and delta["events"] == 0  # no new digest, nothing vulnerable


def _ecr_lookups(operator: Services) -> float:
    return sum(
        sample.value
        for metric in operator.metrics.provider_requests.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("provider") == "ecr"
    )


class ThrottlingProxy(BaseHTTPRequestHandler):
    """Answers the first requests with ThrottlingException, then forwards to moto."""

    upstream = ""
    throttle = 0
    seen: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(self.headers.get("X-Amz-Target", ""))
        if type(self).throttle > 0:
            type(self).throttle -= 1
            payload = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
            self._reply(400, payload.encode(), "application/x-amz-json-1.1")
            return
        # the Host header is part of the SigV4 signature: pass it through unchanged
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        request = urllib.request.Request(self.upstream + self.path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                self._reply(response.status, response.read(), response.headers["Content-Type"])
        except urllib.error.HTTPError as error:
            self._reply(error.code, error.read(), error.headers["Content-Type"])

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def test_throttling_is_retried_with_backoff(moto: Moto, aws_environment: None) -> None:
    """A signed request through a loopback proxy that throttles twice before moto answers."""
    tag = unique("throttled")
    digest = moto.push_image(tag)
    moto.scan(digest, findingSeverityCounts={"HIGH": 1})
    ThrottlingProxy.upstream, ThrottlingProxy.throttle, ThrottlingProxy.seen = moto.url, 2, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ThrottlingProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        provider = EcrProvider(
            endpoint_url=f"http://127.0.0.1:{server.server_port}", max_attempts=4
        )
        target = ScanTarget(digest, f"{REGISTRY}/{REPOSITORY}:{tag}", "ns", "Pod", "p", "app")
        answer = provider.lookup(target)
        assert answer is not None and answer.outcome is Outcome.COMPLETE
        assert (
            ThrottlingProxy.seen
            == ["AmazonEC2ContainerRegistry_V20150921.DescribeImageScanFindings"] * 3
        )

        ThrottlingProxy.throttle = 10  # more than max_attempts: reported, not raised
        stubborn = EcrProvider(
            endpoint_url=f"http://127.0.0.1:{server.server_port}", max_attempts=2
        )
        answer = stubborn.lookup(target)
        assert answer is not None
        assert (answer.outcome, answer.reason, answer.healthy) == (
            Outcome.ERROR,
            "Throttled",
            False,
        )
    finally:
        server.shutdown()


def test_images_from_other_registries_are_not_ecrs_business(aws_environment: None) -> None:
    provider = EcrProvider(endpoint_url="http://127.0.0.1:9")  # never contacted
    for image in (
        "nginx:1.27",
        "public.ecr.aws/nginx/nginx:1",
        "ghcr.io/acme/app@sha256:" + "a" * 64,
    ):
        target = ScanTarget("sha256:" + "a" * 64, image, "ns", "Pod", "p", "app")
        assert provider.lookup(target) is None
