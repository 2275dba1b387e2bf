"""The local control plane itself: the pinned version answers, stores what kubectl applies,
serves CRDs, explains a failed start, and leaves no process or directory behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mamori.settings import load_settings
from mamori_dev.controlplane import (
    ControlPlaneError,
    ControlPlaneSettings,
    LocalControlPlane,
    remove_abandoned_work_dirs,
)
from tests.cluster_fixtures import Kubectl
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
PINNED_VERSION = "v1.36.3"


def pod(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
        }
    )


def crd(group: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {"size": {"type": "integer"}},
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
    )


def test_client_and_server_report_the_pinned_version(kubectl: Kubectl) -> None:
    report = json.loads(kubectl("version", "--output=json").stdout)
    assert report["clientVersion"]["gitVersion"] == PINNED_VERSION
    assert report["serverVersion"]["gitVersion"] == PINNED_VERSION
    assert (report["serverVersion"]["major"], report["serverVersion"]["minor"]) == ("1", "36")


def test_namespace_and_pod_are_stored(kubectl: Kubectl, namespace: str) -> None:
    assert kubectl("get", "namespace", namespace, "-o", "name").stdout.strip() == (
        f"namespace/{namespace}"
    )
    applied = kubectl("apply", "-n", namespace, "-f", "-", input=pod("hello"))
    assert applied.stdout.strip() == "pod/hello created"
    stored = json.loads(kubectl("get", "-n", namespace, "pod", "hello", "-o", "json").stdout)
    assert stored["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.10"
    assert stored["status"]["phase"] == "Pending"  # no scheduler, no kubelet: stored only


def test_missing_object_is_an_error(kubectl: Kubectl, namespace: str) -> None:
    result = kubectl("get", "-n", namespace, "pod", "nobody", check=False)
    assert result.returncode == 1
    assert 'pods "nobody" not found' in result.stderr


def test_crd_becomes_established_and_serves_objects(kubectl: Kubectl, namespace: str) -> None:
    group = f"{namespace}.example.com"
    kubectl("apply", "-f", "-", input=crd(group))
    try:
        kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/widgets.{group}")
        widget = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 3},
        }
        # Discovery of a brand-new group can lag the Established condition by a moment.
        wait_for(
            lambda: (
                kubectl(
                    "apply", "-n", namespace, "-f", "-", input=json.dumps(widget), check=False
                ).returncode
                == 0
            ),
            timeout=30,
            message="the Widget kind to be served",
        )
        stored = kubectl("get", "-n", namespace, f"widgets.{group}", "w", "-o", "json").stdout
        assert json.loads(stored)["spec"] == {"size": 3}
    finally:
        kubectl("delete", f"crd/widgets.{group}", "--wait=false", check=False)


def test_stop_leaves_no_process_and_no_directory(tmp_path: Path) -> None:
    settings = load_settings(ControlPlaneSettings, None, os.environ)
    with LocalControlPlane(settings) as plane:
        pids, work_dir = plane.pids, plane.work_dir
        assert len(pids) == 2
        assert all(process_alive(pid) for pid in pids)
        assert (work_dir / "etcd-data").is_dir()
        assert plane.running
        plane.write_kubeconfig(tmp_path / "copy")
        assert (tmp_path / "copy").stat().st_mode & 0o777 == 0o600
    assert not any(process_alive(pid) for pid in pids)
    assert not work_dir.exists()
    plane.stop()  # idempotent


def test_failed_start_names_the_cause_and_keeps_the_logs() -> None:
    settings = load_settings(ControlPlaneSettings, None, os.environ)
    broken = ControlPlaneSettings(
        controlplane_bin=settings.controlplane_bin,
        service_cluster_ip_range="not-a-cidr",
        startup_timeout=60,
    )
    plane = LocalControlPlane(broken)
    with pytest.raises(ControlPlaneError) as raised:
        plane.start()
    message = str(raised.value)
    assert "kube-apiserver" in message and "exited with status" in message
    assert "service-cluster-ip-range" in message  # the log tail carries the apiserver's reason
    kept = Path(message.rsplit("work directory kept: ", 1)[1].strip())
    try:
        assert (kept / "kube-apiserver.log").is_file()
        assert not (kept / "etcd-data").exists()
        assert not any(process_alive(pid) for pid in plane.pids)
    finally:
        shutil.rmtree(kept)


def test_missing_binaries_say_how_to_build_them(tmp_path: Path) -> None:
    plane = LocalControlPlane(ControlPlaneSettings(controlplane_bin=tmp_path))
    with pytest.raises(ControlPlaneError, match=r"make controlplane"):
        plane.start()
    assert list(tmp_path.iterdir()) == []


def test_cli_serves_until_terminated_then_cleans_up(tmp_path: Path) -> None:
    """What `make demo` runs: `python -m mamori_dev.controlplane up --kubeconfig F`."""
    kubeconfig, output = tmp_path / "kubeconfig", tmp_path / "output.txt"
    work_root = tmp_path / "work"
    work_root.mkdir()
    argv = [sys.executable, "-m", "mamori_dev.controlplane", "up", "--kubeconfig", str(kubeconfig)]
    environment = {**os.environ, "MAMORI_WORK_ROOT": str(work_root)}
    with output.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    try:
        wait_for(
            lambda: process.poll() is not None or "Ctrl-C stops it." in output.read_text(),
            timeout=90,
            message="the control plane CLI to report ready",
        )
        assert process.poll() is None, output.read_text()
        text = output.read_text()
        assert f"export KUBECONFIG={kubeconfig}" in text
        pids = [int(pid) for pid in re.findall(r"\d+", text.split("pids", 1)[1].split(")")[0])]
        assert len(pids) == 2 and all(process_alive(pid) for pid in pids)
        kubectl = load_settings(ControlPlaneSettings, None, os.environ).controlplane_bin / "kubectl"
        listed = subprocess.run(
            [
                str(kubectl),
                f"--kubeconfig={kubeconfig}",
                "get",
                "namespace",
                "default",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.stdout.strip() == "namespace/default", listed.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
    assert status == 130, output.read_text()
    assert not kubeconfig.exists()
    assert not any(process_alive(pid) for pid in pids)
    assert list(work_root.iterdir()) == []


def test_only_directories_of_dead_owners_are_swept(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid names no process any more
    layout = {
        "mamori-controlplane-abandoned": str(child.pid),
        "mamori-controlplane-live": str(os.getpid()),
        "mamori-controlplane-kept": None,  # kept after a failure: no owner file
        "unrelated-dir": str(child.pid),
    }
    for name, owner in layout.items():
        (tmp_path / name).mkdir()
        if owner is not None:
            (tmp_path / name / "owner.pid").write_text(owner)
    removed = remove_abandoned_work_dirs(tmp_path)
    assert removed == [tmp_path / "mamori-controlplane-abandoned"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mamori-controlplane-kept",
        "mamori-controlplane-live",
        "unrelated-dir",
    ]


def process_alive(pid: int) -> bool:
    """True while ``pid`` is one of our servers and not a zombie (pids get reused)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z" and (b"etcd" in command or b"kube-apiserver" in command)
