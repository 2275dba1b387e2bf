"""Shared pieces of the operator's integration tests (tests/integration/test_operator_*.py).

The operator runs in-process (kopf in a thread, exactly what ``mamori operator`` runs, minus the
Lease) against the real API server. Pods are never scheduled on this control plane, so tests
write pod status themselves the way a kubelet would: ``containerStatuses[].imageID`` and all.
"""

from __future__ import annotations

import datetime
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import kopf
import kubernetes.client
import kubernetes.config
import yaml
from kubernetes.client.rest import ApiException

from mamori_operator.config import OperatorConfig
from mamori_operator.runtime import run_operator
from mamori_operator.services import Services
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = (
    ROOT / "charts/mamori/crds/clustersecuritypolicies.mamori.io.yaml",
    ROOT / "charts/mamori/crds/imagescans.mamori.io.yaml",
    ROOT / "tests/fixtures/crds/vulnerabilityreports.aquasecurity.github.io.yaml",
)
GROUP, VERSION = "mamori.io", "v1alpha1"
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 20.0, message: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``message`` on timeout."""
    return wait_for(predicate, timeout=timeout, message=message)


@dataclass
class Cluster:
    """Typed API clients for one kubeconfig."""

    api: kubernetes.client.ApiClient
    core: kubernetes.client.CoreV1Api
    net: kubernetes.client.NetworkingV1Api
    custom: kubernetes.client.CustomObjectsApi
    ext: kubernetes.client.ApiextensionsV1Api
    coord: kubernetes.client.CoordinationV1Api

    @classmethod
    def connect(cls, kubeconfig: Path) -> Cluster:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=configuration
        )
        api = kubernetes.client.ApiClient(configuration)
        return cls(
            api=api,
            core=kubernetes.client.CoreV1Api(api),
            net=kubernetes.client.NetworkingV1Api(api),
            custom=kubernetes.client.CustomObjectsApi(api),
            ext=kubernetes.client.ApiextensionsV1Api(api),
            coord=kubernetes.client.CoordinationV1Api(api),
        )

    # -- CRDs ---------------------------------------------------------------------------------

    def install_crds(self) -> None:
        """Apply mamori's CRDs (and the test copy of Trivy's) and wait until they serve."""
        for path in CRD_FILES:
            self.install_crd(yaml.safe_load(path.read_text()))

    def install_crd(self, body: dict[str, Any]) -> None:
        """Create or replace one CRD, and wait until it serves."""
        name = body["metadata"]["name"]
        try:
            self.ext.create_custom_resource_definition(body)
        except ApiException as error:
            if error.status != 409:
                raise
            current = self.ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            self.ext.replace_custom_resource_definition(name, body)
        wait_until(lambda: self._established(name), message=f"CRD {name} established")

    def _established(self, name: str) -> bool:
        crd = self.ext.read_custom_resource_definition(name)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    # -- namespaces and pods ------------------------------------------------------------------

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self.core.create_namespace({"metadata": {"name": name, "labels": dict(labels or {})}})

    def delete_namespace(self, name: str) -> None:
        try:
            self.core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise

    def label_namespace(self, name: str, labels: Mapping[str, str | None]) -> None:
        self.core.patch_namespace(name, {"metadata": {"labels": dict(labels)}})

    def create_pod(
        self,
        namespace: str,
        name: str,
        containers: Mapping[str, str],
        *,
        owner: tuple[str, str] | None = None,
        security: str = "restricted",
    ) -> dict[str, Any]:
        """A pod with one container per (name → image); ``owner`` = (ReplicaSet name, uid)."""
        context: dict[str, Any] = {}
        if security == "restricted":
            context = {
                "allowPrivilegeEscalation": False,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            }
        elif security == "privileged":
            context = {"privileged": True}
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if owner is not None:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": owner[0],
                    "uid": owner[1],
                    "controller": True,
                }
            ]
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "containers": [
                    {"name": c, "image": image, "securityContext": context}
                    for c, image in containers.items()
                ]
            },
        }
        return self.api.sanitize_for_serialization(  # type: ignore[no-any-return]
            self.core.create_namespaced_pod(namespace, body)
        )

    def kubelet_reports(self, namespace: str, name: str, image_ids: Mapping[str, str]) -> None:
        """Write pod status as a kubelet does once containers run: phase, imageID, state."""
        pod = self.core.read_namespaced_pod(name, namespace)
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        statuses = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": image_ids[c.name],
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in pod.spec.containers
            if c.name in image_ids
        ]
        self.core.patch_namespaced_pod_status(
            name,
            namespace,
            {
                "status": {
                    "phase": "Running",
                    "hostIP": "10.0.0.1",
                    "podIP": "10.1.0.7",
                    "startTime": now,
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": statuses,
                }
            },
        )

    def pod_annotations(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_pod(name, namespace).metadata.annotations or {})

    # -- mamori objects -----------------------------------------------------------------------

    def apply_policy(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": name},
            "spec": dict(spec),
        }
        try:
            current = self.custom.get_cluster_custom_object(
                GROUP, VERSION, "clustersecuritypolicies", name
            )
        except ApiException as error:
            if error.status != 404:
                raise
            return self.custom.create_cluster_custom_object(  # type: ignore[no-any-return]
                GROUP, VERSION, "clustersecuritypolicies", body
            )
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.custom.replace_cluster_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, "clustersecuritypolicies", name, body
        )

    def policy(self, name: str) -> dict[str, Any]:
        return self.custom.get_cluster_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, "clustersecuritypolicies", name
        )

    def delete_policy(self, name: str) -> None:
        try:
            self.custom.delete_cluster_custom_object(
                GROUP, VERSION, "clustersecuritypolicies", name
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def image_scan(self, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_cluster_custom_object(  # type: ignore[no-any-return]
                GROUP, VERSION, "imagescans", name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def write_image_scan(self, digest: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create the ImageScan a CI pipeline writes for ``digest`` (named after the digest)."""
        return self.custom.create_cluster_custom_object(  # type: ignore[no-any-return]
            GROUP,
            VERSION,
            "imagescans",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ImageScan",
                "metadata": {"name": digest.replace(":", "-")},
                "spec": {"digest": digest, **spec},
            },
        )

    def wait_for_scan_status(self, namespace: str, pod: str, status: str) -> dict[str, str]:
        """The pod's annotations once ``mamori.io/scan-status`` reads ``status``."""

        def annotated() -> dict[str, str] | None:
            annotations = self.pod_annotations(namespace, pod)
            return annotations if annotations.get("mamori.io/scan-status") == status else None

        try:
            return wait_until(annotated, message=f"pod {pod} scan-status {status}")
        except AssertionError as error:
            raise AssertionError(
                f"{error}; pod has {self.pod_annotations(namespace, pod)}"
            ) from None

    def network_policies(self, namespace: str) -> dict[str, Any]:
        items = self.net.list_namespaced_network_policy(namespace).items
        return {item.metadata.name: item for item in items}

    def events_about(self, namespace: str, name: str) -> list[Any]:
        return [
            e
            for e in self.core.list_namespaced_event(namespace).items
            if e.involved_object.name == name
        ]


def condition(policy: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for item in (policy.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item  # type: ignore[no-any-return]
    return {}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def fake_digest(seed: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def operator_config(kubeconfig: Path, **overrides: Any) -> OperatorConfig:
    """Fast refreshes, no Lease: one operator per test module."""
    config = OperatorConfig(
        kubeconfig=Path(kubeconfig),
        leader_election=False,
        status_interval=0.3,
        resync_interval=600.0,
        workers=4,
        log_format="text",
    )
    return replace(config, **overrides)


@contextmanager
def running_operator(config: OperatorConfig) -> Iterator[Services]:
    """Run the operator in a thread; yield its services once kopf is ready; stop it after."""
    memo = kopf.Memo()
    stop, ready = threading.Event(), threading.Event()
    outcome: list[int | BaseException] = []

    def target() -> None:
        try:
            outcome.append(run_operator(config, memo=memo, stop=stop, ready=ready))
        except BaseException as error:  # surface it to the test instead of a silent thread
            outcome.append(error)

    thread = threading.Thread(target=target, name="operator-under-test", daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: outcome or (ready.is_set() and "services" in memo),
            timeout=60,
            message="operator ready",
        )
        if outcome:
            raise AssertionError(f"operator stopped during start: {outcome[0]!r}")
        services: Services = memo.services
        wait_until(lambda: services.housekeeper.passes > 0, message="first housekeeping pass")
        yield services
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "operator did not stop within 60s"


def delete_all(
    cluster: Cluster, *, policies: Sequence[str] = (), namespaces: Sequence[str] = ()
) -> None:
    for name in policies:
        cluster.delete_policy(name)
    for name in namespaces:
        cluster.delete_namespace(name)


def webhook_configuration_body(name: str) -> dict[str, Any]:
    """Two webhooks that select no namespace: they judge nothing on the shared control plane."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{hook}.mamori.io",
                "clientConfig": {"url": "https://127.0.0.1:9/validate"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"mamori.io/never": name}},
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
            for hook in ("validate", "second")
        ],
    }
