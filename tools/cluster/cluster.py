"""`make cluster` / `make cluster-down`: a Docker-free local cluster with mamori installed.

`up` starts the control plane, controllers, scheduler and one real node (containerd, kubelet,
kube-proxy) in a network namespace of their own (tests/integration/cluster.py), imports the
image `make image` built, installs charts/mamori with helm, writes an admin kubeconfig, and
stays in the foreground until Ctrl-C or `down`, then takes everything down. `down` stops a
running `up` and removes whatever a crashed one left (processes, mounts, cgroups, namespace).
The counterpart of `make kind-up kind-install`, for machines without Docker. Root only.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from mamori_dev.controlplane import ControlPlaneError, process_exists
from tests.chart.helm import Helm
from tests.integration.cluster import (
    WORK_DIR_PREFIX,
    ClusterError,
    LocalCluster,
    install_mamori,
    reap_abandoned_clusters,
)
from tests.integration.node_images import renamed_archive

REPOSITORY = Path(__file__).resolve().parents[2]

IMAGE_ARCHIVE = REPOSITORY / ".cache" / "image" / "mamori.oci.tar"
IMAGE = "localhost/mamori:dev"
HELM_BIN = REPOSITORY / ".cache" / "helm" / "bin"
DOWN_TIMEOUT = 90.0


def up(kubeconfig: Path) -> int:
    if not IMAGE_ARCHIVE.is_file():
        print(f"mamori cluster: {IMAGE_ARCHIVE} is missing: run `make image`", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mamori-cluster-tool-") as scratch:
        archive = renamed_archive(IMAGE_ARCHIVE, name=IMAGE, destination=Path(scratch) / "i.tar")
        with LocalCluster(images=[archive]) as cluster:
            print(f"mamori cluster: node Ready in {time.monotonic() - started:.0f}s", flush=True)
            helm = Helm(HELM_BIN / "helm", Path(scratch) / "helm", cluster.kubeconfig)
            seconds = install_mamori(cluster, helm, image=IMAGE)
            print(f"mamori cluster: mamori installed, all pods Ready in {seconds:.0f}s", flush=True)
            kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            cluster.plane.write_kubeconfig(kubeconfig)
            print(
                f"\n  export KUBECONFIG={kubeconfig}\n  kubectl get pods -A\n"
                f"  {HELM_BIN / 'helm'} list -A\n\n"
                "Ctrl-C (or `make cluster-down` elsewhere) stops the cluster.",
                flush=True,
            )
            while not stop.wait(1.0):
                cluster.plane.check_running()
                if exited := cluster.node.exited():
                    raise ClusterError(f"{exited} exited:\n{cluster.log_tails()}")
    kubeconfig.unlink(missing_ok=True)
    print("mamori cluster: stopped, nothing left behind", flush=True)
    return 0


def down(parent: Path) -> int:
    """SIGTERM every running `up`, wait for it, then reap what any crashed run left."""
    owners = []
    for work_dir in parent.glob(f"{WORK_DIR_PREFIX}*"):
        try:
            pid = int((work_dir / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            owners.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + DOWN_TIMEOUT
    while any(process_exists(pid) for pid in owners) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in owners:
        if process_exists(pid):
            os.kill(pid, signal.SIGKILL)
    reaped = reap_abandoned_clusters(parent)
    print(f"mamori cluster: {len(owners)} stopped, {len(reaped)} cleaned up after a crash")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cluster.cluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the cluster with mamori; Ctrl-C stops it")
    start.add_argument(
        "--kubeconfig",
        type=Path,
        default=REPOSITORY / ".cache" / "cluster" / "kubeconfig",
        help="where to write the admin kubeconfig (mode 0600)",
    )
    commands.add_parser("down", help="stop a running cluster, clean up after a crashed one")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("mamori cluster: needs root (namespaces, cgroups, mounts)", file=sys.stderr)
        return 2
    if args.command == "up":
        try:
            return up(args.kubeconfig)
        except (ClusterError, ControlPlaneError) as error:
            print(f"mamori cluster: {error}", file=sys.stderr)
            return 1
    return down(Path(tempfile.gettempdir()))


if __name__ == "__main__":
    sys.exit(main())
