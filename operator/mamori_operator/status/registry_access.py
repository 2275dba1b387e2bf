"""The audit's way to registries, built once from :class:`OperatorConfig` at start.

One registry client (its tag → digest and token caches) for the run, trusting the system's CAs
and ``--registry-ca-file``. Credentials as the webhook has them, in the order the kubelet tries
them: the running pod's imagePullSecrets (``--registry-pod-pull-secrets``, read through the
operator's client when a registry call needs them, kept 30 s: :mod:`.pull_secrets`), then
``--registry-credentials`` (a mounted ``kubernetes.io/dockerconfigjson`` Secret, re-read when it
changes, so a rotated Secret needs no restart), then Amazon ECR tokens
(``--registry-ecr-credentials``, as the operator's IAM role: the core's
:mod:`mamori.supplychain.ecr_tokens`, the webhook's logic). Nothing connects until a policy
asks for signatures or tag resolution. Signature answers are not cached here but in
:class:`~mamori_operator.status.evidence.AuditEvidence`, which knows when each one stops
counting.
"""

from __future__ import annotations

import logging

from mamori.supplychain.configured import (
    ConfiguredCredentials,
    CredentialsFile,
    credentials_file,
    registry_client,
)
from mamori.supplychain.credentials import TokenProvider
from mamori.supplychain.ecr_tokens import EcrCredentialsConfig, EcrTokenProvider
from mamori.supplychain.live import EvidenceConfig, RegistryEvidence, RequestLookup
from mamori.supplychain.pull_secrets import PullSecretStore, image_pull_secret_names
from mamori_operator.api.kube import Kube
from mamori_operator.config import OperatorConfig
from mamori_operator.state.cluster import ClusterState, PodRecord
from mamori_operator.status.evidence import AuditEvidence, EvidenceTimes, RegistryAsker
from mamori_operator.status.pull_secrets import audit_pull_secrets

logger = logging.getLogger(__name__)


class AuditRegistry:
    """How the audit asks registries: as the operator (:meth:`__call__`), or as one pod
    (:meth:`asker`, with its imagePullSecrets first)."""

    def __init__(
        self,
        registry: RegistryEvidence,
        *,
        credentials: CredentialsFile | None = None,
        token_provider: TokenProvider | None = None,
        pull_secrets: PullSecretStore | None = None,
    ) -> None:
        self._registry = registry
        self._credentials = ConfiguredCredentials(credentials, token_provider)
        self._pull_secrets = pull_secrets  # None: the pods' imagePullSecrets are not read

    def __call__(self, until: float) -> RegistryAsker:
        return RequestLookup(self._registry, self._credentials.current().credentials_for, until)

    def asker(self, until: float, pod: PodRecord) -> RegistryAsker:
        names = self._names(pod)
        if self._pull_secrets is None or not names:
            return self(until)
        source = self._credentials.current()
        secrets = self._pull_secrets.for_pod(pod.namespace, names)
        return RequestLookup(
            self._registry,
            lambda reference: secrets.credentials_for(source, reference),
            until,
            note_for=secrets.note_for,
        )

    def whose(self, pod: PodRecord) -> str:
        names = self._names(pod)
        return f"{pod.namespace}/{','.join(names)}" if names else ""

    def _names(self, pod: PodRecord) -> tuple[str, ...]:
        """The Secrets the running pod names (its ServiceAccount's among them: the API server
        copied those in when the pod was created)."""
        if self._pull_secrets is None:
            return ()
        return tuple(image_pull_secret_names(pod.body))


def registry_asker(config: OperatorConfig, *, kube: Kube | None = None) -> AuditRegistry:
    """How the audit asks registries; raises OSError, ssl.SSLError or CredentialsError for a
    CA or credentials file that cannot be used. ``kube`` reads the pods' pull Secrets
    (``--registry-pod-pull-secrets``); without it they are not read."""
    client = registry_client(timeout=config.registry_timeout, ca_file=config.registry_ca_file)
    # lifetimes 0: AuditEvidence keeps the answers, with the moment each stops counting
    registry = RegistryEvidence(
        client, EvidenceConfig(budget=config.registry_budget, verified_ttl=0, refused_ttl=0)
    )
    pull_secrets = None
    if config.registry_pod_pull_secrets and kube is not None:
        pull_secrets = audit_pull_secrets(kube, timeout=config.registry_timeout)
    return AuditRegistry(
        registry,
        credentials=credentials_file(config.registry_credentials),
        token_provider=audit_token_provider(config),
        pull_secrets=pull_secrets,
    )


def audit_token_provider(config: OperatorConfig) -> TokenProvider | None:
    """Amazon ECR tokens as the operator's AWS identity (boto3's chain: IRSA, EKS Pod
    Identity), with ``--registry-ecr-credentials``; None without."""
    if not config.registry_ecr_credentials:
        return None
    return EcrTokenProvider(
        EcrCredentialsConfig(endpoint_url=config.registry_ecr_endpoint, identity="the operator")
    )


def build_audit_evidence(
    config: OperatorConfig, state: ClusterState, *, kube: Kube | None = None
) -> AuditEvidence:
    """The audit's evidence for a run (see :func:`registry_asker` for what it raises)."""
    registry = registry_asker(config, kube=kube)
    return AuditEvidence(
        state,
        ask=registry,
        pods=registry,
        times=EvidenceTimes(pod_budget=config.registry_budget),
    )
