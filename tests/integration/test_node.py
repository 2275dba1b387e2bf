"""A real node: the binaries `make node` builds report the pin, and a kubelet on containerd 2.x
registers with the local API server, runs a pod, serves its logs through the API server, and
applies the securityContext asked for (read back from /proc, not from the API)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import wait_for
from tests.integration.faults import private_control_plane
from tests.integration.node_support import (
    NODE_BIN,
    NONROOT_UID,
    TOUCHED_SYSCTLS,
    LocalNode,
    NodeIdentity,
    assert_runs_restricted,
    container_pid,
    leftovers,
    make_kubelet_tls,
    node_work_dir,
    read_sysctl,
    restricted_pod_spec,
)

pytestmark = pytest.mark.integration
KUBE_VERSION = "v1.36.3"
CONTAINERD_MAJOR = "v2."
LOG_LINE = "mamori-node-proof"


@pytest.mark.parametrize(
    "binary", ["kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler"]
)
def test_node_binaries_report_the_control_plane_pin(binary: str) -> None:
    output = subprocess.run(
        [str(NODE_BIN / binary), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == f"Kubernetes {KUBE_VERSION}"


def test_containerd_is_2x() -> None:
    output = subprocess.run(
        [str(NODE_BIN / "containerd"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert output.split()[2].startswith(CONTAINERD_MAJOR), output


def test_a_pod_runs_on_a_real_node_as_asked() -> None:
    with node_work_dir() as work:
        sysctls_before = {name: read_sysctl(name) for name in TOUCHED_SYSCTLS}
        identity = NodeIdentity.choose()
        tls = make_kubelet_tls(work / "tls", identity=identity)
        with private_control_plane(apiserver_args=tls.apiserver_args()) as plane:

            def kubectl(*args: str, stdin: str | None = None) -> str:
                result = subprocess.run(
                    [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}", *args],
                    input=stdin,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
                return result.stdout

            with LocalNode(
                work_dir=work, kubeconfig=plane.kubeconfig, tls=tls, identity=identity
            ) as node:
                name = node.identity.name
                try:
                    _node_ready(kubectl, name)
                    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(_pod(name)))
                    pod = _pod_running(kubectl)
                    _check_pod(node=node, pod=pod, kubectl=kubectl)
                    kubectl("delete", "pod", "proof", "--wait=true", "--timeout=60s")
                except BaseException:
                    print(node.log_tails())
                    raise
        # Stopped: nothing of the node is left on the host, and the kernel settings that the
        # kubelet and the bridge plugin rewrite are back to what they were.
        assert leftovers(identity=identity, work_dir=work) == []
        assert {name: read_sysctl(name) for name in TOUCHED_SYSCTLS} == sysctls_before


def _node_ready(kubectl: Any, name: str) -> None:
    def ready() -> bool:
        found = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
        for item in found:
            if item["metadata"]["name"] == name:
                conditions = {c["type"]: c["status"] for c in item["status"]["conditions"]}
                return conditions.get("Ready") == "True"
        return False

    wait_for(ready, timeout=120, interval=0.5, message=f"node {name} Ready")


def _pod(node_name: str) -> dict[str, Any]:
    spec = restricted_pod_spec(["/bin/sh", "-c", f"echo {LOG_LINE}; id -u; exec sleep 3600"])
    spec["nodeName"] = node_name  # no scheduler here: the kubelet takes it as bound
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "proof", "namespace": "default"},
        "spec": spec,
    }


def _pod_running(kubectl: Any) -> dict[str, Any]:
    def running() -> dict[str, Any]:  # empty: not yet
        pod: dict[str, Any] = json.loads(kubectl("get", "pod", "proof", "-o", "json"))
        statuses = pod["status"].get("containerStatuses") or []
        if statuses and "running" in statuses[0]["state"]:
            return pod
        return {}

    return wait_for(running, timeout=120, interval=0.5, message="pod proof Running")


def _check_pod(*, node: LocalNode, pod: dict[str, Any], kubectl: Any) -> None:
    ip = pod["status"]["podIP"]
    assert ip in [str(address) for address in node.identity.subnet], ip

    # Logs go API server -> kubelet (TLS, client certificate of the node's CA) -> containerd.
    logs = wait_for(
        lambda: (text := kubectl("logs", "proof")) and text.count("\n") >= 2 and text,
        timeout=30,
        message="two log lines",
    )
    assert logs.splitlines()[:2] == [LOG_LINE, str(NONROOT_UID)]

    pid = container_pid(node, pod)
    assert_runs_restricted(pid)
    # It runs in a pod cgroup under the node's own parent, where stop() will look for it.
    cgroups = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    memory = next(line.split(":", 2)[2] for line in cgroups if ":memory:" in line)
    assert memory.startswith(f"{node.identity.cgroup_root}/kubepods"), memory
