"""The webhook's integration tests' view of the real API server: CRD, namespaces, policies.

Every name is unique per test and every policy selects only the namespaces its test labels, so
these tests share one control plane with the operator's without stepping on each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kubernetes.client
import yaml
from kubernetes.client.rest import ApiException

from tests.helpers import wait_for
from tests.webhook.served import ROOT

CRD = ROOT / "charts" / "mamori" / "crds" / "clustersecuritypolicies.mamori.io.yaml"
GROUP, VERSION, PLURAL = "mamori.io", "v1alpha1", "clustersecuritypolicies"
TEST_LABEL = "mamori.io/webhook-test"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def install_policy_crd(api: kubernetes.client.ApiClient) -> None:
    """Create (or keep) the ClusterSecurityPolicy CRD and wait until it is served."""
    ext = kubernetes.client.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD.read_text())
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as error:
        if error.status != 409:
            raise
    custom = kubernetes.client.CustomObjectsApi(api)

    def served() -> bool:
        try:
            custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
            return True
        except ApiException:
            return False

    wait_for(served, timeout=60, message="ClusterSecurityPolicy CRD served")


@dataclass
class Scope:
    """One test's namespaces and policies, all carrying the test's own label; policies removed
    after the test (namespaces by the ``make_namespace`` fixture)."""

    api: kubernetes.client.ApiClient
    make_namespace: Callable[..., str]
    label: str = field(default_factory=lambda: unique("t"))
    policies: list[str] = field(default_factory=list)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def namespace(self, **labels: str) -> str:
        return self.make_namespace(labels={TEST_LABEL: self.label, **labels})

    def policy(self, name: str | None = None, **spec: Any) -> str:
        """Create a policy that selects only this scope's namespaces (unless spec says)."""
        name = name or unique("csp")
        spec.setdefault("namespaceSelector", {"matchLabels": {TEST_LABEL: self.label}})
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
        self.policies.append(name)
        return name

    def patch_policy(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"spec": spec})

    def delete_policy(self, name: str) -> None:
        self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        self.policies.remove(name)

    def cleanup(self) -> None:
        for name in self.policies:
            try:
                self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
            except ApiException as error:
                if error.status != 404:
                    raise
