"""The pods and policies the engine benchmark judges, shared with the PSA side (tools/psa-bench).

Three workloads, from cheapest to dearest: a compliant one-container Pod, the admission
benchmark's production-shaped four-container Deployment (compliant, so every rule runs to the end
on every container), and the same Deployment broken in the ways real manifests are (root,
privileged, host namespaces and paths, added capabilities, no seccomp, tags instead of digests,
an untrusted registry), so every finding is built and rendered.
"""

from __future__ import annotations

import copy
from typing import Any

from bench.admission import payload

POLICY_SPECS: dict[str, dict[str, Any]] = {
    "baseline": {"podSecurity": "baseline"},
    "restricted": {"podSecurity": "restricted"},
    "production": dict(payload.POLICY["spec"]),  # restricted + trusted registries + digests
}


def policy_document(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": name},
        "spec": POLICY_SPECS[name],
    }


def compliant_pod() -> dict[str, Any]:
    """One container, restricted-compliant, image pinned in a trusted registry."""
    container = payload.container("app", port=8080)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "shop", "labels": {"app": "app"}},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "app"}},
            ],
        },
    }


def violating_deployment() -> dict[str, Any]:
    """The four-container Deployment with the mistakes each PSS level and image rule catches."""
    deployment = copy.deepcopy(payload.deployment("shop-legacy"))
    pod = deployment["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    pod["securityContext"] = {"runAsUser": 0}
    pod["volumes"].append({"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}})
    pod["volumes"].append({"name": "nfs", "nfs": {"server": "10.0.0.1", "path": "/export"}})
    init, web, envoy, fluent = pod["initContainers"][0], *pod["containers"]
    init["image"] = "busybox:1.36"
    init["securityContext"] = {"runAsUser": 0}
    web["image"] = "untrusted.example/acme/web:2.1"
    web["securityContext"]["privileged"] = True
    web["securityContext"]["allowPrivilegeEscalation"] = True
    del web["securityContext"]["seccompProfile"]
    envoy["securityContext"]["capabilities"] = {"add": ["NET_ADMIN", "SYS_TIME"]}
    envoy["ports"][0]["hostPort"] = 9901
    fluent["securityContext"] = {"seccompProfile": {"type": "Unconfined"}}
    return deployment


WORKLOADS: dict[str, Any] = {
    "pod-1c": compliant_pod,
    "deploy-4c": payload.deployment,
    "deploy-4c-violating": violating_deployment,
}
