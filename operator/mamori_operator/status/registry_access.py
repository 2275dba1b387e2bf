"""The audit's way to registries, built once from :class:`OperatorConfig` at start.

One registry client (its tag → digest and token caches) for the run, trusting the system's CAs
and ``--registry-ca-file``; credentials from ``--registry-credentials`` (a mounted
``kubernetes.io/dockerconfigjson`` Secret, re-read when it changes, so a rotated Secret needs no
restart). Nothing connects until a policy asks for signatures or tag resolution. Signature
answers are not cached here but in :class:`~mamori_operator.status.evidence.AuditEvidence`,
which knows when each one stops counting.
"""

from __future__ import annotations

import logging

from mamori.supplychain.configured import credentials_file, registry_client
from mamori.supplychain.credentials import (
    CredentialSource,
)
from mamori.supplychain.live import EvidenceConfig, RegistryEvidence, RequestLookup
from mamori_operator.config import OperatorConfig
from mamori_operator.state.cluster import ClusterState
from mamori_operator.status.evidence import AskerFactory, AuditEvidence, EvidenceTimes

logger = logging.getLogger(__name__)


def registry_asker(config: OperatorConfig) -> AskerFactory:
    """How the audit asks registries; raises OSError, ssl.SSLError or CredentialsError for a
    CA or credentials file that cannot be used."""
    client = registry_client(timeout=config.registry_timeout, ca_file=config.registry_ca_file)
    # lifetimes 0: AuditEvidence keeps the answers, with the moment each stops counting
    registry = RegistryEvidence(
        client, EvidenceConfig(budget=config.registry_budget, verified_ttl=0, refused_ttl=0)
    )
    file = credentials_file(config.registry_credentials)

    def ask(until: float) -> RequestLookup:
        source = CredentialSource(configured=file.current() if file is not None else None)
        return RequestLookup(registry, source.credentials_for, until)

    return ask


def build_audit_evidence(config: OperatorConfig, state: ClusterState) -> AuditEvidence:
    """The audit's evidence for a run (see :func:`registry_asker` for what it raises)."""
    return AuditEvidence(
        state,
        ask=registry_asker(config),
        times=EvidenceTimes(pod_budget=config.registry_budget),
    )
