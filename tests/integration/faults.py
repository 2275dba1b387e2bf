"""Faults to inject into a real control plane: the network, the API server, etcd, admission.

Fault tests (the operator's and the webhook's) prove that a component converges after what a
real cluster does to it. They never use the session's control plane (a killed API server would
disturb every other test): each gets its own, from :func:`private_control_plane` or the fixtures
in tests/integration/conftest.py built on it. The pieces:

API server and etcd (methods of :class:`mamori_dev.controlplane.LocalControlPlane`)
    ``stop_apiserver(kill=False)``, ``start_apiserver()``,
    ``restart_apiserver(down_for=0.0, kill=False)``: same port, etcd and PKI, so kubeconfigs and
    data survive; ``start_apiserver`` returns once ``/readyz`` answers. ``compact_etcd()`` →
    the revision compacted to; with ``apiserver_args=("--watch-cache=false",)`` every watch from
    an older resourceVersion then gets 410 Gone. ``etcd_revision()`` reads the current one.

:func:`private_control_plane` (context manager)
    ``with private_control_plane(apiserver_args=("--watch-cache=false",)) as plane:`` starts an
    etcd + kube-apiserver of the test's own (settings from ``MAMORI_*`` as for the session one)
    and stops it on exit, whatever happened; a failed start fails the test with the log tail.

:class:`LoopbackProxy` (context manager; ``start()``/``stop()`` also work)
    A TCP proxy on 127.0.0.1 in front of ``upstream`` (host, port). ``url`` is
    ``https://127.0.0.1:PORT``: the local API server's certificate names 127.0.0.1, so TLS
    verifies through it unchanged. ``cut()`` resets every open connection and resets each new
    one as soon as it is accepted: clients fail at once, like a peer that went away.
    ``cut(blackhole=True)`` instead forwards nothing in either direction and holds new
    connections unanswered: clients hang until their own timeouts, like a silent partition.
    ``restore()`` forwards again (held new connections are reset; paused ones resume).
    ``open_connections`` counts the client connections currently open.

:func:`write_proxied_kubeconfig(source, destination, proxy)`
    A copy of ``source`` whose clusters point at the proxy (same CA and credentials).

:class:`NetworkPolicyRefusal` (context manager; ``start()``/``end()`` also work)
    A ValidatingAdmissionPolicy and its binding that make the API server deny NetworkPolicy
    CREATE and UPDATE (``operations``) in ``namespace`` (every namespace when None) with a
    message containing :data:`REFUSAL_MESSAGE`. No webhook server is involved. ``start()``
    returns once a server-side dry-run create is refused, ``end()`` once one is accepted, so a
    test's clock starts when the refusal really holds or ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import threading
import types
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from mamori.settings import SettingsError, load_settings
from mamori_dev.controlplane import ControlPlaneError, ControlPlaneSettings, LocalControlPlane
from tests.helpers import wait_for

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 5.0
REFUSAL_MESSAGE = "mamori fault test: NetworkPolicy writes are refused for now"
KUBECTL_TIMEOUT = 60.0


# -- a control plane of the test's own ------------------------------------------------------------


@contextlib.contextmanager
def private_control_plane(*, apiserver_args: Sequence[str] = ()) -> Iterator[LocalControlPlane]:
    """An etcd + kube-apiserver for one test (or module), stopped on exit whatever happened."""
    try:
        settings = load_settings(ControlPlaneSettings, None, os.environ)
    except SettingsError as error:
        pytest.fail(f"control plane settings: {error}", pytrace=False)
    settings = replace(settings, apiserver_args=(*settings.apiserver_args, *apiserver_args))
    plane = LocalControlPlane(settings)
    try:
        plane.start()
    except ControlPlaneError as error:
        pytest.fail(f"the private control plane did not start:\n{error}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


# -- the network ----------------------------------------------------------------------------------


class _Link:
    """One client connection and its upstream connection (None while held during a cut)."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = False
        self.pumps_done = 0

    def reset(self) -> None:
        """Drop both sides with RST (SO_LINGER 0), waking any thread blocked on them."""
        self.closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)  # wakes a blocked recv without sending a FIN
            with contextlib.suppress(OSError):
                sock.close()


class LoopbackProxy:
    """A TCP proxy on 127.0.0.1 whose link to ``upstream`` a test can cut and restore."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._flowing = threading.Event()  # cleared during a blackhole cut
        self._flowing.set()
        self._refusing = False  # new connections are reset (cut) or held (blackhole)
        self._blackhole = False
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for link in self._links if not link.closed)

    @property
    def is_cut(self) -> bool:
        with self._lock:
            return self._refusing

    def start(self) -> LoopbackProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(128)
        self._listener, self.port = listener, listener.getsockname()[1]
        self._spawn(self._accept_loop, name=f"proxy-accept-{self.port}")
        return self

    def stop(self) -> None:
        """Close the listener and every connection; join the threads. Idempotent."""
        self._stopped.set()
        self._flowing.set()  # release pumps waiting out a blackhole, so they can exit
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            listener.close()
        self._reset_all()
        for thread in self._threads:
            thread.join(10)

    def cut(self, *, blackhole: bool = False) -> None:
        """Take the link down: reset everything (default), or go silent (``blackhole``)."""
        with self._lock:
            self._refusing, self._blackhole = True, blackhole
            if blackhole:
                self._flowing.clear()
        if not blackhole:
            self._reset_all()

    def restore(self) -> None:
        """Forward again; connections held during a blackhole are reset, paused ones resume."""
        with self._lock:
            held = [link for link in self._links if link.upstream is None]
            self._refusing, self._blackhole = False, False
            self._flowing.set()
        for link in held:
            self._forget(link)

    def __enter__(self) -> LoopbackProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.stop()

    # -- threads ----------------------------------------------------------------------------

    def _spawn(self, target: Any, *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was shut down by stop()
            with self._lock:
                refusing, blackhole = self._refusing, self._blackhole
            if refusing and blackhole:
                with self._lock:
                    self._links.add(_Link(client, None))
                continue
            if refusing:
                _Link(client, None).reset()
                continue
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=CONNECT_TIMEOUT)
        except OSError:
            _Link(client, None).reset()  # the upstream is down: the client sees it at once
            return
        upstream.settimeout(None)
        link = _Link(client, upstream)
        with self._lock:
            cut_meanwhile = self._refusing and not self._blackhole
            if not cut_meanwhile:
                self._links.add(link)
        if cut_meanwhile:
            link.reset()
            return
        self._spawn(self._pump, link, client, upstream, name=f"proxy-up-{self.port}")
        self._spawn(self._pump, link, upstream, client, name=f"proxy-down-{self.port}")

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        """Copy ``source`` to ``sink`` until either end closes; pause while blackholed."""
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)  # pass a clean close on
                    break
                self._flowing.wait()
                if link.closed or self._stopped.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                link.pumps_done += 1
                finished = link.pumps_done == 2
            if finished:
                self._forget(link)

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)
        link.reset()

    def _reset_all(self) -> None:
        with self._lock:
            links, self._links = list(self._links), set()
        for link in links:
            link.reset()


def write_proxied_kubeconfig(source: Path, destination: Path, proxy: LoopbackProxy) -> Path:
    """Copy ``source`` with every cluster's server set to the proxy; mode 0600; return it."""
    document = yaml.safe_load(source.read_text())
    for entry in document.get("clusters") or []:
        entry["cluster"]["server"] = proxy.url
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.touch(mode=0o600)
    destination.chmod(0o600)
    destination.write_text(yaml.safe_dump(document, sort_keys=False))
    return destination


# -- admission --------------------------------------------------------------------------------


class NetworkPolicyRefusal:
    """Make the API server refuse NetworkPolicy writes until :meth:`end` (a CEL policy)."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        kubectl: Path,
        namespace: str | None,
        operations: Sequence[str] = ("CREATE", "UPDATE"),
        timeout: float = 30.0,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = kubectl
        self.namespace = namespace
        self.operations = tuple(operations)
        self.timeout = timeout
        self.name = f"mamori-fault-refuse-netpol-{uuid.uuid4().hex[:6]}"
        self.active = False

    def start(self) -> NetworkPolicyRefusal:
        """Install the policy and binding; return once a dry-run create is refused."""
        self._kubectl("apply", "-f", "-", input=json.dumps(self._manifests()))
        self.active = True
        if "CREATE" in self.operations:
            wait_for(
                lambda: not self._probe_accepted(),
                timeout=self.timeout,
                interval=0.2,
                message=f"the API server to enforce {self.name}",
            )
        return self

    def end(self) -> None:
        """Remove the policy and binding; return once a dry-run create is accepted again."""
        self._kubectl(
            "delete",
            f"validatingadmissionpolicybinding/{self.name}",
            f"validatingadmissionpolicy/{self.name}",
            "--ignore-not-found",
            "--wait=true",
        )
        self.active = False
        wait_for(
            self._probe_accepted,
            timeout=self.timeout,
            interval=0.2,
            message=f"the API server to stop enforcing {self.name}",
        )

    def __enter__(self) -> NetworkPolicyRefusal:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        if self.active:
            self.end()

    def _manifests(self) -> dict[str, Any]:
        match: dict[str, Any] = {}
        if self.namespace is not None:
            match = {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": self.namespace}
                }
            }
        policy = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": self.name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["networking.k8s.io"],
                            "apiVersions": ["*"],
                            "operations": list(self.operations),
                            "resources": ["networkpolicies"],
                        }
                    ]
                },
                "validations": [{"expression": "false", "message": REFUSAL_MESSAGE}],
            },
        }
        binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": self.name},
            "spec": {
                "policyName": self.name,
                "validationActions": ["Deny"],
                "matchResources": match,
            },
        }
        return {"apiVersion": "v1", "kind": "List", "items": [policy, binding]}

    def _probe_accepted(self) -> bool:
        """A server-side dry-run create of a NetworkPolicy: True when admission accepts it."""
        probe = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"{self.name}-probe",
                "namespace": self.namespace or "default",
            },
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
        done = self._kubectl(
            "create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False
        )
        if done.returncode == 0:
            return True
        if REFUSAL_MESSAGE in done.stderr:
            return False
        raise AssertionError(f"dry-run NetworkPolicy create failed otherwise: {done.stderr}")

    def _kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=KUBECTL_TIMEOUT,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr}"
            )
        return done
