"""A local cluster whose owner was killed (SIGKILL: no cleanup ran) is taken down by the next
start: its servers, containers and shims, mounts, cgroups, network namespace and directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mamori_dev.netns import NetworkNamespace
from tests.integration.cluster import reap_abandoned_clusters
from tests.integration.node_support import (
    _mount_targets,
    _processes_mentioning,
    cgroup_dirs,
)

pytestmark = pytest.mark.integration
REPOSITORY = Path(__file__).resolve().parents[2]

OWNER = """
import json, sys
sys.path.append(sys.argv[1])
import yaml
from pathlib import Path
from tests.helpers import wait_for
from tests.integration.cluster import LocalCluster
from tests.integration.node_images import BUSYBOX_IMAGE

POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "left", "namespace": "default"},
    "spec": {"containers": [{"name": "c", "image": BUSYBOX_IMAGE,
             "imagePullPolicy": "Never", "command": ["/bin/sleep", "3600"]}]},
}
with LocalCluster(work_root=Path(sys.argv[2])) as cluster:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(POD))
    wait_for(
        lambda: "running" in json.dumps(cluster.get_json("pod", "left")["status"]),
        timeout=120, interval=0.5, message="pod running",
    )
    print(json.dumps({"work_dir": str(cluster.work_dir), "namespace": cluster.namespace.name,
                      "cgroup_root": cluster.identity.cgroup_root}), flush=True)
    sys.stdin.read()  # until killed
"""


def test_a_crashed_cluster_is_taken_down_by_the_next_start() -> None:
    # Short: unix socket paths (containerd's) must stay under 108 bytes.
    parent = Path(tempfile.mkdtemp(prefix="mamori-crash-"))
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(REPOSITORY), str(parent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = owner.stdout.readline() if owner.stdout else ""
        os.kill(owner.pid, signal.SIGKILL)  # the crash: no stop(), no atexit, no finally
        owner.wait()
        assert line, "the owner process died before its cluster was up"
        state = json.loads(line)
        work_dir, namespace = Path(state["work_dir"]), NetworkNamespace(state["namespace"])
        # The crash left the node running: its namespace, its cgroups, its processes.
        assert namespace.exists
        assert cgroup_dirs(state["cgroup_root"])
        assert namespace.pids()

        assert reap_abandoned_clusters(parent) == [work_dir]

        assert not namespace.exists
        assert cgroup_dirs(state["cgroup_root"]) == []
        assert [t for t in _mount_targets() if t.startswith(str(work_dir))] == []
        assert _processes_mentioning(str(work_dir)) == []
        assert not work_dir.exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        reap_abandoned_clusters(parent)  # a failed assertion must not leave it running
        shutil.rmtree(parent, ignore_errors=True)
