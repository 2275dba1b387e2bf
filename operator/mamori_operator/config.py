"""The operator's settings: one typed object, from ``mamori operator`` flags and MAMORI_* variables.

Everything the handlers need to know about their environment is here and reaches them through
kopf's ``memo``; nothing below reads the environment on its own.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from mamori.logs import FORMATS as LOG_FORMATS
from mamori.settings import SettingsError, named, setting

MIN_REPORT_BYTES = 16 * 1024  # room for the report's envelope and a few results


@dataclass(frozen=True)
class OperatorConfig:
    """How to reach the cluster and AWS, and how eagerly to refresh status."""

    kubeconfig: Path | None = setting(
        None, help="kubeconfig file; without it: in-cluster config, then $KUBECONFIG"
    )
    namespace: str = setting(
        "mamori-system", help="namespace the operator runs in (its Lease lives there)"
    )
    identity: str | None = setting(
        None, help="this replica's name in the Lease; default hostname and process id"
    )
    leader_election: bool = setting(
        True, help="hold a Lease so that only one replica acts at a time"
    )
    lease_name: str = setting("mamori-operator", help="name of the leader-election Lease")
    lease_seconds: float = setting(
        15.0, help="how long a leader's Lease lasts without renewal before a standby takes over"
    )
    status_interval: float = setting(
        2.0, help="seconds between policy status refreshes (written only when they change)"
    )
    resync_interval: float = setting(
        300.0,
        help="seconds between full resyncs (re-list the cluster, converge everything again)",
    )
    retry_base_delay: float = setting(
        0.5, help="seconds before the first retry of a failed NetworkPolicy write (then doubled)"
    )
    retry_max_delay: float = setting(
        60.0, help="longest wait between retries of a failed NetworkPolicy write"
    )
    watch_timeout: float = setting(
        300.0, help="seconds a watch request lasts before it is renewed (bounds a stalled stream)"
    )
    workers: int = setting(8, help="threads that run handlers and API calls")
    ecr_endpoint_url: str | None = setting(
        None, help="ECR API endpoint override (VPC endpoint, or a local test server)"
    )
    aws_max_attempts: int = setting(
        5, help="attempts per AWS call, with backoff on throttling (botocore standard retries)"
    )
    top_findings: int = setting(20, help="findings kept per ImageScan object, worst first")
    registry_timeout: float = setting(
        1.5,
        help="seconds one registry request of the audit may take (resolving a tag, reading a "
        "signature), connection, TLS and every read included",
    )
    registry_budget: float = setting(
        2.0,
        help="seconds the audit may spend asking registries about one pod's images",
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
    registry_ecr_credentials: bool = setting(
        False,
        help="get Amazon ECR registry tokens with ecr:GetAuthorizationToken (the operator's IAM "
        "role) for images on private ECR hosts, as the webhook does",
    )
    registry_ecr_endpoint: str | None = setting(
        None,
        help="ECR API endpoint URL for those tokens (a VPC endpoint); default: the region's",
        metavar="URL",
    )
    registry_pod_pull_secrets: bool = setting(
        False,
        help="ask registries with the credentials of the running pod's imagePullSecrets first, "
        "as the kubelet does (kept 30 s; needs get on secrets in the pods' namespaces)",
    )
    offenders: int = setting(5, help="offending pods listed in a policy's status")
    policy_reports: bool = setting(
        False,
        help="write the audit's findings as wgpolicyk8s.io PolicyReports (needs their CRDs)",
    )
    policy_report_max_results: int = setting(
        1000, help="results listed in one PolicyReport at most (the report says when it is cut)"
    )
    policy_report_max_bytes: int = setting(
        1024 * 1024, help="size of one PolicyReport at most, in bytes (etcd's limit is ~1.5 MiB)"
    )
    metrics_port: int = setting(
        0, help="port for Prometheus metrics on all interfaces; 0 turns the endpoint off"
    )
    health_port: int = setting(
        0, help="port for the /healthz liveness probe (standbys answer too); 0 turns it off"
    )
    log_format: str = setting("json", help="log format: json or text", metavar="FORMAT")
    verbose: bool = setting(False, help="log debug messages")

    def validate(self) -> None:
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"{named('log_format')}={self.log_format!r}: expected json or text")
        for name in (
            "lease_seconds",
            "status_interval",
            "resync_interval",
            "retry_base_delay",
            "retry_max_delay",
            "watch_timeout",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{named(name, with_env=False)} must be greater than 0")
        if self.policy_report_max_results < 1:
            raise SettingsError(f"{named('policy_report_max_results')} must be at least 1")
        if self.policy_report_max_bytes < MIN_REPORT_BYTES:
            raise SettingsError(
                f"{named('policy_report_max_bytes')} must be at least {MIN_REPORT_BYTES}"
            )
        if self.workers < 1:
            raise SettingsError(f"{named('workers')} must be at least 1")
        for name in ("registry_timeout", "registry_budget"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{named(name)} must be greater than 0")
        for name in ("registry_ca_file", "registry_credentials"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise SettingsError(f"{named(name)}={path}: no such file")
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise SettingsError(f"{named('kubeconfig')}={self.kubeconfig}: no such file")

    def replica_identity(self) -> str:
        return self.identity or f"{socket.gethostname()}-{os.getpid()}"
