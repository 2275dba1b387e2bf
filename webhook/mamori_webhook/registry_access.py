"""The webhook's way to registries: one client and its caches per worker, credentials per image.

Built from :class:`~mamori_webhook.settings.WebhookSettings` when a worker starts, used only
while some policy asks registries (``spec.imageSignatures``, ``resolveImageTags``): a cluster
without such a policy never opens a connection to a registry from the webhook.

Credentials, in the order the kubelet tries them: the pod's imagePullSecrets
(``--pod-pull-secrets``: :mod:`mamori_webhook.pull_secrets`, read only when a registry call needs
them; for a pod template that lists none, its ServiceAccount's), then the configured file (a
mounted ``kubernetes.io/dockerconfigjson`` Secret, re-read when it changes, so a rotated Secret
needs no restart), then Amazon ECR tokens (``--ecr-credentials``). A file that cannot be read or
parsed leaves the previous credentials in force and is logged, never echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mamori.supplychain.configured import (
    ConfiguredCredentials,
    CredentialsFile,
    credentials_file,
    registry_client,
)
from mamori.supplychain.credentials import TokenProvider
from mamori.supplychain.live import EvidenceConfig, RegistryEvidence
from mamori.supplychain.lookup import RegistryLookup
from mamori.supplychain.pull_secrets import PullSecretStore, image_pull_secret_names
from mamori_webhook.pull_secrets import LOG as PULL_SECRETS_LOG
from mamori_webhook.pull_secrets import KubeAccountFetch, KubeSecretFetch, PullSecretsUnavailable
from mamori_webhook.settings import WebhookSettings

LOG = logging.getLogger("mamori_webhook.registry")


class RegistryAccess:
    """Per worker: a :class:`RegistryEvidence` and where each image's credentials come from."""

    def __init__(
        self,
        evidence: RegistryEvidence,
        *,
        credentials_file: CredentialsFile | None = None,
        token_provider: TokenProvider | None = None,
        pull_secrets: PullSecretStore | None = None,
    ) -> None:
        self.evidence = evidence
        self._credentials = ConfiguredCredentials(credentials_file, token_provider)
        self._pull_secrets = pull_secrets  # None: the pods' imagePullSecrets are not read

    def for_request(
        self,
        *,
        namespace: str | None = None,
        pull_secret_names: Sequence[str] | None = None,
        pod: Mapping[str, Any] | None = None,
    ) -> RegistryLookup:
        """The lookup one admission review uses (its own budget), for a pod in ``namespace``
        naming ``pull_secret_names`` (or those ``pod``, the reviewed object, names: looked at
        only when the pods' Secrets are read at all); the Secrets are read when an image first
        needs them. A pod template's names
        (:class:`~mamori.supplychain.pull_secrets.PullSecretNames`) also say whose
        ServiceAccount's Secrets its pods will get when it lists none."""
        source = self._credentials.current()
        if self._pull_secrets is None or not namespace:
            return self.evidence.for_request(source.credentials_for)
        if pull_secret_names is None:
            pull_secret_names = image_pull_secret_names(pod) if pod is not None else ()
        account = getattr(pull_secret_names, "service_account", None)
        if not (pull_secret_names or account):
            return self.evidence.for_request(source.credentials_for)
        pod_secrets = self._pull_secrets.for_pod(
            namespace, pull_secret_names, service_account=account
        )
        return self.evidence.for_request(
            lambda reference: pod_secrets.credentials_for(source, reference),
            note_for=pod_secrets.note_for,
        )


def build_registry_access(settings: WebhookSettings, *, api_client: Any = None) -> RegistryAccess:
    """Everything from the settings; raises OSError or CredentialsError for a bad file.

    ``api_client`` reads the pods' imagePullSecrets (``--pod-pull-secrets``); without it one is
    built for the cluster found as for watching, or :class:`PullSecretsUnavailable` raised.
    """
    client = registry_client(
        timeout=settings.registry_timeout,
        ca_file=settings.registry_ca_file,
        cache_ttl=settings.registry_cache_ttl,
    )
    token_provider = None
    if settings.ecr_credentials:
        from mamori_webhook.ecr_credentials import ecr_token_provider

        token_provider = ecr_token_provider(endpoint_url=settings.ecr_endpoint)
    pull_secrets = None
    if settings.pod_pull_secrets:
        api_client = api_client or cluster_api_client(settings)
        pull_secrets = PullSecretStore(
            KubeSecretFetch(api_client, timeout=settings.registry_timeout),
            accounts=KubeAccountFetch(api_client, timeout=settings.registry_timeout),
            log=PULL_SECRETS_LOG,
        )
    return RegistryAccess(
        RegistryEvidence(client, EvidenceConfig(budget=settings.registry_budget)),
        credentials_file=credentials_file(settings.registry_credentials),
        token_provider=token_provider,
        pull_secrets=pull_secrets,
    )


def cluster_api_client(settings: WebhookSettings) -> Any:
    """An ApiClient for the cluster the policies are watched in, that does not retry: one
    Secret GET must fit in the review's registry budget."""
    import kubernetes.client

    from mamori.kubeconfig import load_client_configuration

    try:
        configuration = load_client_configuration(settings.kubeconfig)
    except Exception as error:
        raise PullSecretsUnavailable(
            f"--pod-pull-secrets: no cluster to read imagePullSecrets from ({error})"
        ) from None
    configuration.retries = False
    return kubernetes.client.ApiClient(configuration)
