"""Generate the manifests that ``bench/check/bench.py`` feeds to mamori check and kube-score.

The mix is what a CI job over a real repository meets: Deployments, StatefulSets, DaemonSets,
Jobs, CronJobs and bare Pods with one to three containers, probes, resources and volumes, plus
the Services and ConfigMaps that sit beside them (which both tools skip or score lightly). About
a third of the workloads break a rule (root, privileged, host namespaces, no seccomp, a missing
capability drop), so both tools write findings, not only a summary.

Half the manifests write small lists and maps on one line (``drop: ["ALL"]``), as people do by
hand; the other half are block style throughout, as ``kubectl get -o yaml`` writes them.

Each manifest is written twice, byte for byte the same: as one file per object under
``<out>/dir/`` (spread over sub-directories of 500), and concatenated into ``<out>/stream.yaml``
with ``---`` separators.

Deterministic: the same ``--count`` always gives the same bytes. Plain Python, no dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

FILES_PER_DIRECTORY = 500
REGISTRY = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


def to_yaml(value: object, indent: int = 0, *, flow: bool = False) -> Iterator[str]:
    """Block-style YAML lines for plain data; strings are quoted as JSON (valid YAML).

    With ``flow``, small collections of scalars are written on one line, as people write
    ``drop: ["ALL"]`` and ``seccompProfile: {type: RuntimeDefault}`` by hand.
    """
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if flow and is_small(item):
                yield f"{pad}{key}: {flow_text(item)}"
            elif isinstance(item, (dict, list)) and item:
                yield f"{pad}{key}:"
                child_indent = indent + 2 if isinstance(item, dict) else indent
                yield from to_yaml(item, child_indent, flow=flow)
            else:
                yield f"{pad}{key}: {scalar(item)}"
    elif isinstance(value, list):
        for item in value:
            lines = list(to_yaml(item, indent + 2, flow=flow))
            if isinstance(item, (dict, list)) and item:
                yield f"{pad}- {lines[0].lstrip()}"
                yield from lines[1:]
            else:
                yield f"{pad}- {scalar(item)}"
    else:
        yield f"{pad}{scalar(value)}"


def is_small(value: object) -> bool:
    """A non-empty list or mapping of at most two scalars."""
    items = value.values() if isinstance(value, dict) else value
    return (
        isinstance(value, (dict, list))
        and 0 < len(value) <= 2
        and not any(isinstance(item, (dict, list)) for item in items)  # type: ignore[union-attr]
    )


def flow_text(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {scalar(item)}" for key, item in value.items()) + "}"
    return "[" + ", ".join(json.dumps(item) for item in value) + "]"  # type: ignore[union-attr]


def scalar(value: object) -> str:
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = text.replace("-", "").replace(".", "").replace("/", "").replace("_", "")
    return (
        text
        if plain.isalnum() and not plain.isdigit() and text not in ("true", "false")
        else (json.dumps(text))
    )


def container(name: str, *, index: int, flaw: str | None) -> dict[str, Any]:
    security: dict[str, Any] = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if flaw == "root":
        security["runAsNonRoot"] = False
        security["runAsUser"] = 0
    elif flaw == "privileged":
        security["privileged"] = True
        security["allowPrivilegeEscalation"] = True
    elif flaw == "capabilities":
        security["capabilities"] = {"add": ["NET_ADMIN", "SYS_TIME"]}
    elif flaw == "seccomp":
        del security["seccompProfile"]
    port = 8000 + index % 1000
    probe = {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 10}
    return {
        "name": name,
        "image": f"{REGISTRY}/team-{index % 17}/{name}:1.{index % 40}.{index % 7}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "100Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
        },
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "securityContext": security,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def pod_spec(name: str, *, index: int, flaw: str | None) -> dict[str, Any]:
    containers = [container(name, index=index, flaw=flaw)]
    for extra in range(index % 3):
        containers.append(container(f"{name}-sidecar-{extra}", index=index + extra, flaw=None))
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if flaw == "host-network":
        spec["hostNetwork"] = True
    return spec


FLAWS = (None, None, "root", None, "privileged", None, "capabilities", None, "seccomp")


def workload(index: int) -> dict[str, Any]:
    """The ``index``-th object: mostly workloads, every seventh a Service or ConfigMap."""
    name = f"app-{index:06d}"
    namespace = f"team-{index % 17}"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace}
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    if index % 7 == 6:
        if index % 2:
            return {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata,
                "data": {"LOG_LEVEL": "info", "FEATURE_FLAGS": "a,b,c"},
            }
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
    kind = WORKLOAD_KINDS[index % len(WORKLOAD_KINDS)]
    flaw = FLAWS[index % len(FLAWS)] if index % 11 else "host-network"
    spec = pod_spec(name, index=index, flaw=flaw)
    template = {"metadata": {"labels": labels}, "spec": spec}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    if kind == "Job":
        spec["restartPolicy"] = "Never"
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": {"backoffLimit": 2, "template": template},
        }
    if kind == "CronJob":
        spec["restartPolicy"] = "OnFailure"
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata,
            "spec": {"schedule": "*/15 * * * *", "jobTemplate": {"spec": {"template": template}}},
        }
    workload_spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": template}
    if kind != "DaemonSet":
        workload_spec = {"replicas": 1 + index % 3, **workload_spec}
    if kind == "StatefulSet":
        workload_spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": workload_spec}


def manifest(index: int) -> str:
    """Every other manifest hand-written style (small flow collections), the rest as tools
    such as ``kubectl get -o yaml`` write them (block style throughout)."""
    return "\n".join(to_yaml(workload(index), flow=index % 2 == 1)) + "\n"


def generate(count: int, out: str) -> None:
    """Write ``<out>/dir/`` and ``<out>/stream.yaml`` for ``count`` objects (replacing them)."""
    directory = os.path.join(out, "dir")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    with open(os.path.join(out, "stream.yaml"), "w", encoding="utf-8") as stream:
        for index in range(count):
            text = manifest(index)
            sub = os.path.join(directory, f"part-{index // FILES_PER_DIRECTORY:03d}")
            if index % FILES_PER_DIRECTORY == 0:
                os.makedirs(sub)
            with open(os.path.join(sub, f"{index:06d}.yaml"), "w", encoding="utf-8") as file:
                file.write(text)
            stream.write("---\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True, help="number of objects")
    parser.add_argument("--out", required=True, help="output directory (replaced)")
    args = parser.parse_args()
    generate(args.count, args.out)


if __name__ == "__main__":
    main()
