"""What the admission benchmark sends: a realistic Deployment review, and the policy it meets.

A production-shaped Deployment (about 6 KB of JSON): three containers and an init container with
full securityContexts, probes, resources, env, volume mounts, images from a private ECR registry
pinned by digest. It satisfies the policy, so every rule runs to the end on every container
(an early denial would make the engine look faster than it is).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

REGISTRY = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"

POLICY: dict[str, Any] = {
    "apiVersion": "mamori.io/v1alpha1",
    "kind": "ClusterSecurityPolicy",
    "metadata": {"name": "production"},
    "spec": {
        "enforcement": "Enforce",
        "podSecurity": "restricted",
        "trustedRegistries": ["*.dkr.ecr.ap-northeast-1.amazonaws.com", "registry.k8s.io"],
        "requireImageDigest": True,
        "exemptNamespaces": ["kube-system"],
    },
}


def image(name: str) -> str:
    return f"{REGISTRY}/shop/{name}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"


def container(name: str, *, port: int | None = None, cpu: str = "250m") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "image": image(name),
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "password"}},
            },
        ],
        "resources": {
            "requests": {"cpu": cpu, "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": "/etc/shop", "readOnly": True},
        ],
    }
    if port is not None:
        spec["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        probe = {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 10}
        spec["readinessProbe"] = probe
        spec["livenessProbe"] = {**probe, "failureThreshold": 6}
    return spec


def deployment(name: str = "shop-frontend") -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "initContainers": [container("migrate", cpu="100m")],
                    "containers": [
                        container("web", port=8080),
                        container("envoy", port=9901),
                        container("fluent-bit", port=2020, cpu="50m"),
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"medium": "Memory"}},
                        {"name": "config", "configMap": {"name": name}},
                    ],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                },
            },
        },
    }


def review() -> dict[str, Any]:
    """The AdmissionReview the API server sends for ``kubectl apply`` of the Deployment."""
    obj = deployment()
    gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": gvk,
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": obj["metadata"]["name"],
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:argocd:argocd-application-controller",
                "uid": str(uuid.uuid4()),
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
