"""Safe to run twice: a Lease picks one active replica, a standby takes over, restarts resume
without duplicates, and cut connections (an API server restart, as clients see it) are survived."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.integration.operator_support import (
    Cluster,
    free_port,
    operator_config,
    running_operator,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration
LEASE = "mamori-operator"


class Replica:
    """``mamori operator`` as its own process, the way a Deployment runs it."""

    def __init__(self, *, kubeconfig: Path, namespace: str, identity: str, logs: Path) -> None:
        self.identity = identity
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.log_path = logs / f"{identity}.log"
        self._log: IO[str] = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mamori.cli",
                "operator",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                namespace,
                "--identity",
                identity,
                "--lease-seconds",
                "3",
                "--status-interval",
                "0.5",
                "--workers",
                "2",
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                str(self.health_port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        )

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample from the replica's /metrics, or None if it does not answer yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (
                not wanted or all(f'{k}="{v}"' in line for k, v in labels.items())
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def health(self) -> str | None:
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as reply:
                return str(reply.read().decode())
        except OSError:
            return None

    def logs(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            tail = "\n".join(self.log_path.read_text().splitlines()[-30:])
            raise AssertionError(f"{self.identity} did not stop on {sig.name}:\n{tail}") from None
        finally:
            self._log.close()
        return code


def holder(cluster: Cluster, namespace: str) -> str | None:
    try:
        lease = cluster.coord.read_namespaced_lease(LEASE, namespace)
    except Exception:
        return None
    return lease.spec.holder_identity


def test_one_leader_at_a_time_and_a_standby_takes_over(
    cluster: Cluster, kubeconfig: Path, tmp_path: Path
) -> None:
    home, target, policy = unique("ha"), unique("ha"), unique("ha")
    cluster.create_namespace(home)
    cluster.create_namespace(target, {"mamori-test": target})
    replicas: list[Replica] = []
    try:
        first = Replica(
            kubeconfig=Path(kubeconfig), namespace=home, identity="replica-a", logs=tmp_path
        )
        replicas.append(first)
        wait_until(lambda: holder(cluster, home) == "replica-a", timeout=30, message="a leads")
        second = Replica(
            kubeconfig=Path(kubeconfig), namespace=home, identity="replica-b", logs=tmp_path
        )
        replicas.append(second)
        wait_until(lambda: second.metric("mamori_operator_leader") == 0.0, timeout=30)
        assert second.health() == "standby: waiting for the leader Lease\n"  # alive, not restarted
        assert (first.health() or "").startswith("leading")

        cluster.apply_policy(
            policy,
            {"namespaceSelector": {"matchLabels": {"mamori-test": target}}, "networkPolicy": {}},
        )
        netpol = f"mamori-{policy}"
        original = wait_until(lambda: cluster.network_policies(target).get(netpol), timeout=30)
        # the standby has only looked at the Lease: no watch, no write
        assert second.metric("mamori_operator_api_requests_total", resource="networkpolicies") == 0
        assert second.metric("mamori_operator_api_requests_total", resource="leases", verb="get")

        first.stop(signal.SIGKILL)  # a crash: the Lease is not released, it must expire
        wait_until(lambda: holder(cluster, home) == "replica-b", timeout=30, message="b takes over")
        lease = cluster.coord.read_namespaced_lease(LEASE, home)
        assert lease.spec.lease_transitions == 1
        wait_until(lambda: second.metric("mamori_operator_leader") == 1.0, timeout=10)

        cluster.net.delete_namespaced_network_policy(netpol, target)
        restored = wait_until(lambda: cluster.network_policies(target).get(netpol), timeout=30)
        assert restored.metadata.uid != original.metadata.uid

        assert second.stop(signal.SIGTERM) == 0  # a clean stop hands the Lease back
        assert not holder(cluster, home)

        third = Replica(
            kubeconfig=Path(kubeconfig), namespace=home, identity="replica-c", logs=tmp_path
        )
        replicas.append(third)
        wait_until(lambda: holder(cluster, home) == "replica-c", timeout=30)
        wait_until(lambda: third.metric("mamori_operator_leader") == 1.0, timeout=30)
        # the Lease is taken before kopf starts: wait for the start, or the checks below are moot
        wait_until(
            lambda: any(r.get("message", "").startswith("operator started") for r in third.logs()),
            timeout=30,
            message="replica-c logs 'operator started'",
        )
        wait_until(
            lambda: (cluster.policy(policy).get("status") or {}).get("networkPolicies"), timeout=30
        )
        # resumed without duplicates and without rewriting what was already right
        managed = cluster.net.list_namespaced_network_policy(
            target, label_selector="app.kubernetes.io/managed-by=mamori"
        ).items
        assert [item.metadata.name for item in managed] == [netpol]
        assert managed[0].metadata.resource_version == restored.metadata.resource_version
        # its first resync lists them (a GET); nothing was written
        writes = [
            third.metric("mamori_operator_api_requests_total", resource="networkpolicies", verb=v)
            for v in ("post", "put", "patch", "delete")
        ]
        assert writes == [0, 0, 0, 0]
    finally:
        for replica in replicas:
            replica.stop(signal.SIGKILL)
        cluster.delete_policy(policy)
        cluster.delete_namespace(target)
        cluster.delete_namespace(home)


class CuttableProxy:
    """A TCP proxy to the API server that can drop every connection and refuse new ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.refusing = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                sock.close()

    def cut(self) -> None:
        self.refusing.set()
        with self.lock:
            sockets, self.sockets = self.sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):  # reset, as a crashed server's kernel would
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def resume(self) -> None:
        self.refusing.clear()

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def proxied_kubeconfig(kubeconfig: Path, tmp_path: Path) -> Iterator[tuple[Path, CuttableProxy]]:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    proxy = CuttableProxy((host, int(port)))
    config["clusters"][0]["cluster"]["server"] = f"https://{host}:{proxy.port}"
    path = tmp_path / "proxied-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    yield path, proxy
    proxy.close()


def test_cut_connections_are_survived(
    cluster: Cluster, proxied_kubeconfig: tuple[Path, CuttableProxy]
) -> None:
    path, proxy = proxied_kubeconfig
    policy, label = unique("cut"), unique("cut")
    namespaces = [unique("cut")]
    cluster.create_namespace(namespaces[0], {"mamori-test": label})
    try:
        # short watch requests: a stream the cut left half-open is replaced within seconds
        with running_operator(operator_config(path, watch_timeout=5.0)) as operator:
            cluster.apply_policy(
                policy,
                {"namespaceSelector": {"matchLabels": {"mamori-test": label}}, "networkPolicy": {}},
            )
            wait_until(lambda: cluster.network_policies(namespaces[0]).get(f"mamori-{policy}"))

            proxy.cut()  # every watch and pooled connection dies; new ones are refused
            wait_until(lambda: not proxy.sockets and proxy.refusing.is_set())
            namespaces.append(unique("cut"))
            cluster.create_namespace(namespaces[1], {"mamori-test": label})  # missed while down
            proxy.resume()

            wait_until(
                lambda: cluster.network_policies(namespaces[1]).get(f"mamori-{policy}"),
                timeout=60,
                message="NetworkPolicy in a namespace created while the connection was down",
            )
            cluster.net.delete_namespaced_network_policy(f"mamori-{policy}", namespaces[0])
            wait_until(
                lambda: cluster.network_policies(namespaces[0]).get(f"mamori-{policy}"), timeout=40
            )
            assert operator.metrics.repairs._value.get() >= 1
    finally:
        cluster.delete_policy(policy)
        for name in namespaces:
            cluster.delete_namespace(name)
