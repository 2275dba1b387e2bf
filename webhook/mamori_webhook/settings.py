"""The webhook's settings: one typed object, from ``mamori webhook`` flags and MAMORI_* variables.

Everything the server, the app and the policy source need to know about their environment is
here and reaches them as arguments; nothing below reads the environment on its own.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from mamori.logs import FORMATS as LOG_FORMATS
from mamori.settings import SettingsError, named, setting

MIB = 1024 * 1024


@dataclass(frozen=True)
class WebhookSettings:
    """How to serve AdmissionReviews: address, TLS files, policies, and the server's shape."""

    tls_cert: Path = setting(
        help="PEM certificate (chain) to serve; reloaded when the file changes", metavar="FILE"
    )
    tls_key: Path = setting(
        help="PEM private key of --tls-cert; reloaded when the file changes", metavar="FILE"
    )
    listen: str = setting(
        "0.0.0.0:8443",
        help="address to serve on, HOST:PORT (port 0: any free port)",
        metavar="ADDR",
    )
    policy: Path | None = setting(
        None,
        help="ClusterSecurityPolicy YAML file; without it the policies in the cluster are watched",
        metavar="FILE",
    )
    kubeconfig: Path | None = setting(
        None,
        help="kubeconfig for watching the cluster; without it: in-cluster config, then $KUBECONFIG",
        metavar="FILE",
    )
    workers: int = setting(2, help="server processes (one per core is the measured optimum)")
    threads: int = setting(
        4, help="request threads per server process (they only ever see whole requests)"
    )
    max_body_bytes: int = setting(
        4 * MIB,
        help="largest AdmissionReview accepted; larger bodies get HTTP 400 "
        "(an UPDATE carries two copies of an object of up to 1.5 MiB)",
        metavar="BYTES",
    )
    keepalive: int = setting(
        120,
        help="seconds an idle keep-alive connection from the API server stays open; longer than "
        "the API server's own idle timeout (90 s), so that the client is the one that closes "
        "an idle connection and never writes a request on one the server is closing",
    )
    max_connections: int = setting(
        2048,
        help="open client connections per worker process; past it, the connection that has "
        "waited longest for a request is closed to make room (a flood of idle connections "
        "cannot use up the process's file descriptors)",
    )
    client_timeout: float = setting(
        10.0,
        help="seconds a client has for its TLS handshake, and for each whole request (head and "
        "body) from its first byte; a request late past it gets 408 and its connection closed",
    )
    graceful_timeout: int = setting(
        20, help="seconds in-flight requests get to finish after SIGTERM"
    )
    trusted_annotation_writers: tuple[str, ...] = setting(
        (),
        help="usernames that may add, change or remove mamori.io/ annotations on pods and pod "
        "templates: the operator's ServiceAccount, system:serviceaccount:NAMESPACE:NAME "
        "(comma-separated); nobody else may",
        metavar="USERS",
    )
    events: bool = setting(
        True,
        help="post a Kubernetes Event on the object for each denial and each Warn-mode warning "
        "(repeats counted, rate-limited per object; needs create and patch on events) to the "
        "cluster found as for watching (even with --policy); off when there is none",
    )
    registry_timeout: float = setting(
        1.5,
        help="seconds one registry request may take (resolving a tag, reading a signature), "
        "connection, TLS and every read included",
    )
    registry_budget: float = setting(
        2.0,
        help="seconds all registry requests of one admission review may take together; keep "
        "it well inside the webhook configuration's timeoutSeconds",
    )
    registry_ca_file: Path | None = setting(
        None,
        help="PEM CA certificates trusted for registries besides the system's (a registry with "
        "a private CA)",
        metavar="FILE",
    )
    registry_credentials: Path | None = setting(
        None,
        help="registry credentials in the form of a kubernetes.io/dockerconfigjson Secret's "
        ".dockerconfigjson (a mounted Secret); re-read when the file changes",
        metavar="FILE",
    )
    ecr_credentials: bool = setting(
        False,
        help="get Amazon ECR registry tokens with ecr:GetAuthorizationToken (the pod's IAM role) "
        "for images on private ECR hosts",
    )
    ecr_endpoint: str | None = setting(
        None, help="ECR API endpoint URL (a VPC endpoint); default: the region's", metavar="URL"
    )
    pod_pull_secrets: bool = setting(
        False,
        help="ask registries with the credentials of the pod's imagePullSecrets first, as the "
        "kubelet does (a pod template's ServiceAccount's when it lists none; read from the "
        "cluster found as for watching, kept 30 s; needs get on secrets and serviceaccounts in "
        "the pods' namespaces)",
    )
    registry_cache_ttl: float = setting(
        30.0,
        help="seconds a tag's digest is reused before the registry is asked again (how late a "
        "moved tag is seen)",
    )
    access_log: bool = setting(False, help="log every HTTP request (one JSON line each)")
    log_format: str = setting("json", help="log format: json or text", metavar="FORMAT")
    verbose: bool = setting(False, help="log debug messages")

    def validate(self) -> None:
        for name in ("tls_cert", "tls_key"):
            if not getattr(self, name).is_file():
                raise SettingsError(f"{named(name)}={getattr(self, name)}: no such file")
        for name in ("policy", "kubeconfig", "registry_ca_file", "registry_credentials"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise SettingsError(f"{named(name)}={path}: no such file")
        parse_listen(self.listen)
        for name in ("workers", "threads", "keepalive", "graceful_timeout", "max_connections"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{named(name)} must be at least 1")
        if self.max_body_bytes < 1024:
            raise SettingsError(
                f"{named('max_body_bytes')}={self.max_body_bytes}: expected at least 1024"
            )
        if self.client_timeout <= 0:
            raise SettingsError(f"{named('client_timeout')} must be greater than 0")
        for name in ("registry_timeout", "registry_budget"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{named(name)} must be greater than 0")
        if self.registry_cache_ttl < 0:
            raise SettingsError(f"{named('registry_cache_ttl')} must not be negative")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"{named('log_format')}={self.log_format!r}: expected json or text")

    @property
    def bind(self) -> str:
        """The address in the form gunicorn binds: ``HOST:PORT``, IPv6 hosts in brackets."""
        host, port = parse_listen(self.listen)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8443`` for IPv6); raise :class:`SettingsError` otherwise."""
    problem = SettingsError(
        f"--listen (MAMORI_LISTEN)={value!r}: expected HOST:PORT, "
        "for example 0.0.0.0:8443 or [::]:8443"
    )
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise problem
    port = int(port_text)
    if not 0 <= port < 65536:  # 0: any free port (the log says which)
        raise problem
    if host.startswith("["):
        if not host.endswith("]"):
            raise problem
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise problem from None
    elif ":" in host:
        raise problem
    return host, port
