"""Run the image with runc the way the chart runs it in a pod.

Read-only root filesystem, /tmp an emptyDir-like tmpfs, every capability dropped, no new
privileges, a RuntimeDefault-like seccomp profile, UID/GID 65532 (the chart's runAsUser and
runAsGroup), the image's own entrypoint, environment and working directory. The container shares
the host's network namespace, so a server in it is reached on loopback (tests bind 127.0.0.1).
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.image.seccomp import runtime_default_like

UID = GID = 65532
TMP_SIZE = "64m"


@dataclass(frozen=True)
class Bind:
    """A host file or directory mounted read-only, like a ConfigMap or Secret volume."""

    source: Path
    destination: str


@dataclass
class Container:
    """One container: its bundle directory, id, and what runs in it."""

    rootfs: Path
    image_config: dict[str, Any]
    workdir: Path
    args: Sequence[str] = ()
    entrypoint: Sequence[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    binds: Sequence[Bind] = ()
    seccomp: bool = True
    id: str = field(default_factory=lambda: f"mamori-image-test-{uuid.uuid4().hex[:12]}")

    @property
    def bundle(self) -> Path:
        return self.workdir / self.id

    def spec(self) -> dict[str, Any]:
        """The OCI runtime config: runc's defaults, then the chart's securityContext."""
        self.bundle.mkdir(parents=True)
        subprocess.run(["runc", "spec", "--bundle", str(self.bundle)], check=True, timeout=30)
        spec: dict[str, Any] = json.loads((self.bundle / "config.json").read_text())
        image = self.image_config
        if self.entrypoint is None:  # as Kubernetes: args replace Cmd, command the Entrypoint
            command = list(image.get("Entrypoint") or [])
            command += list(self.args) if self.args else list(image.get("Cmd") or [])
        else:
            command = [*self.entrypoint, *self.args]
        environment = dict(item.split("=", 1) for item in image.get("Env") or [])
        environment.update(self.env)
        process = spec["process"]
        process.update(
            terminal=False,
            user={"uid": UID, "gid": GID},
            args=command,
            env=[f"{key}={value}" for key, value in environment.items()],
            cwd=image.get("WorkingDir") or "/",
            noNewPrivileges=True,
            capabilities={name: [] for name in process["capabilities"]},
        )
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        spec["hostname"] = "mamori"
        spec["mounts"].append(
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", f"size={TMP_SIZE}"],
            }
        )
        for bind in self.binds:
            spec["mounts"].append(
                {
                    "destination": bind.destination,
                    "type": "bind",
                    "source": str(bind.source),
                    "options": ["rbind", "ro", "nosuid", "nodev"],
                }
            )
        linux = spec["linux"]
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
        if self.seccomp:
            linux["seccomp"] = runtime_default_like()
        (self.bundle / "config.json").write_text(json.dumps(spec, indent=1))
        return spec

    def run(self, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run to completion; the container is deleted whatever happens."""
        self.spec()
        try:
            return subprocess.run(
                ["runc", "run", "--bundle", str(self.bundle), self.id],
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        finally:
            self.delete()

    def start(self, log_file: Path) -> subprocess.Popen[bytes]:
        """Start in the background (`runc run` in the foreground of a child process)."""
        self.spec()
        with log_file.open("wb") as log:
            return subprocess.Popen(
                ["runc", "run", "--bundle", str(self.bundle), self.id],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self, process: subprocess.Popen[bytes], *, timeout: float = 30) -> int | None:
        """SIGTERM as the kubelet sends it; then make sure nothing is left behind."""
        try:
            if process.poll() is None:
                subprocess.run(
                    ["runc", "kill", self.id, signal.Signals.SIGTERM.name],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(30)
                    return None
            return process.returncode
        finally:
            self.delete()

    def delete(self) -> None:
        subprocess.run(
            ["runc", "delete", "--force", self.id], capture_output=True, timeout=60, check=False
        )


def readable_by_the_container(*paths: Path) -> None:
    """Volumes as the kubelet mounts them: readable by the pod's non-root user."""
    for path in paths:
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            item.chmod(0o755 if item.is_dir() else 0o644)
