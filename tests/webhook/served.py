"""A real ``mamori webhook`` process on loopback for the TLS tests: certificates, start, stop.

The server runs exactly as in a pod (``python -m mamori.cli webhook …`` with gunicorn workers),
on a free port it picks itself (``--listen 127.0.0.1:0``; the port is read from its log).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from mamori_dev.localca import KeyPair, LocalCA
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1
LISTENING = re.compile(r"serving on https://127\.0\.0\.1:(\d+)")
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Pki:
    """A test CA and the files the server reads."""

    directory: Path
    ca: LocalCA = field(default_factory=LocalCA)

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert_file(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "tls.key"

    def issue(self) -> KeyPair:
        return self.ca.issue_server("mamori-webhook", hosts=("127.0.0.1", "localhost"))

    def write_initial(self) -> KeyPair:
        self.ca_file.write_bytes(self.ca.certificate_pem)
        pair = self.issue()
        pair.write(certificate=self.cert_file, key=self.key_file)
        return pair


@dataclass
class Served:
    """One running webhook process."""

    process: subprocess.Popen[bytes]
    log_file: Path
    port: int
    ca_file: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify; no proxies either
        session.verify = str(self.ca_file)
        return session

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def start_webhook(
    *,
    pki: Pki,
    log_file: Path,
    policy_file: Path | None = None,
    kubeconfig: Path | None = None,
    extra: Sequence[str] = (),
) -> Served:
    """Start on the policy file, or on the cluster of ``kubeconfig``; wait until ready."""
    source = ["--policy", str(policy_file)] if policy_file else ["--kubeconfig", str(kubeconfig)]
    argv = [
        sys.executable, "-m", "mamori.cli", "webhook",
        "--listen", "127.0.0.1:0",
        "--tls-cert", str(pki.cert_file),
        "--tls-key", str(pki.key_file),
        *source,
        "--workers", "2",
        "--threads", "2",
        "--graceful-timeout", "10",
        *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORI_")}
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )

    def port() -> int | None:
        if process.poll() is not None:
            raise AssertionError(
                f"webhook exited with {process.returncode}:\n{log_file.read_text()}"
            )
        found = LISTENING.search(log_file.read_text(encoding="utf-8", errors="replace"))
        return int(found.group(1)) if found else None

    try:
        found = wait_for(port, timeout=30, message="webhook listening")
        served = Served(process, log_file, found, pki.ca_file)
        session = served.session()

        def ready() -> bool:
            try:
                return session.get(f"{served.url}/readyz", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout=30, message="webhook ready")
    except BaseException:
        process.kill()  # the workers notice their master is gone and exit
        process.wait(10)
        raise
    return served


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test run dies, so no server outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def write_policy(path: Path, *documents: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(documents), encoding="utf-8")
    return path


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``, from the text format."""
    total = 0.0
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if not found or found.group("name") != name:
            continue
        sample_labels = dict(LABEL.findall(found.group("labels") or ""))
        if all(sample_labels.get(key) == value for key, value in labels.items()):
            total += float(found.group("value"))
    return total
