"""The pod's imagePullSecrets at admission: read from the API server when an image needs them.

The kubelet pulls with the credentials of the pod's ``spec.imagePullSecrets``; with
``--pod-pull-secrets`` the webhook asks registries as the same identity. Secrets are read only
when a registry call needs credentials (a review whose answers are all cached reads none), with
a GET each, and kept per (namespace, name) for a short TTL in a bounded cache per worker: a
rotated Secret is seen within the TTL, and a busy namespace costs one GET per Secret per TTL.
The store, its cache and the rules for absent Secrets are the core's
(:mod:`mamori.supplychain.pull_secrets`, shared with the operator's audit); this module reads
with the webhook's kubernetes ApiClient.

A Secret that does not exist, may not be read, or is not a registry Secret does not fail the
review by itself: the kubelet skips it too and pulls with what is left. It is remembered as
absent for the TTL, logged once when found so, and named in the answer of any image that the
registry then refused, so the denial says which Secret was missing.

The ServiceAccount's imagePullSecrets: the ServiceAccount admission plugin copies them into a
Pod that lists none before validating webhooks see it, so a Pod needs no read of its own. A
workload's pod template (Deployment, StatefulSet, Job, CronJob…) does not get them, though its
pods will: for a template that lists no Secrets, the webhook GETs the ServiceAccount its pods
will run as (``serviceAccountName``, else ``default``) in the request's namespace, when a
registry call first needs credentials, kept like a Secret for the same TTL, and uses its
Secrets. A ServiceAccount that does not exist is no error by itself (the template is judged
with the configured credentials, and a refusal names it). Both reads need ``get`` (Secrets,
ServiceAccounts), which the chart grants only with ``webhook.registry.podPullSecrets``.
"""

from __future__ import annotations

import logging
from typing import Any

from mamori.supplychain.credentials import CredentialsError
from mamori.supplychain.pull_secrets import (
    AccountSecrets,
    PulledSecret,
    account_where,
    image_pull_secret_names,
    listed_names,
    registry_data,
    secret_where,
    unreadable,
)

LOG = logging.getLogger("mamori_webhook.pull_secrets")
READER = "the webhook"

__all__ = [
    "LOG",
    "KubeAccountFetch",
    "KubeSecretFetch",
    "PullSecretsUnavailable",
    "image_pull_secret_names",
]


class PullSecretsUnavailable(CredentialsError):
    """``--pod-pull-secrets`` with no cluster to read Secrets from (a start-up error)."""


class KubeSecretFetch:
    """A GET of one Secret through the webhook's kubernetes ApiClient, within ``timeout``."""

    def __init__(self, api_client: Any, *, timeout: float) -> None:
        import kubernetes.client

        self._core = kubernetes.client.CoreV1Api(api_client)
        self._timeout = timeout

    def __call__(self, namespace: str, name: str) -> PulledSecret:
        from kubernetes.client.exceptions import ApiException

        where = secret_where(namespace, name)
        try:
            secret = self._core.read_namespaced_secret(
                name, namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            return PulledSecret(
                None, unreadable(where, error.status, reader=READER, resource="secrets")
            )
        except Exception as error:  # unreachable API server, timeout: an answer, not a 500
            problem = unreadable(where, None, reader=READER, resource="secrets", why=_named(error))
            return PulledSecret(None, problem)
        return registry_data(secret.type, secret.data or {}, where=where)


class KubeAccountFetch:
    """A GET of one ServiceAccount (its imagePullSecrets) through the webhook's ApiClient."""

    def __init__(self, api_client: Any, *, timeout: float) -> None:
        import kubernetes.client

        self._core = kubernetes.client.CoreV1Api(api_client)
        self._timeout = timeout

    def __call__(self, namespace: str, name: str) -> AccountSecrets:
        from kubernetes.client.exceptions import ApiException

        where = account_where(namespace, name)
        try:
            account = self._core.read_namespaced_service_account(
                name, namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            return AccountSecrets(
                (), unreadable(where, error.status, reader=READER, resource="serviceaccounts")
            )
        except Exception as error:  # unreachable API server, timeout: an answer, not a 500
            why = _named(error)
            return AccountSecrets(
                (), unreadable(where, None, reader=READER, resource="serviceaccounts", why=why)
            )
        listed = [{"name": entry.name} for entry in account.image_pull_secrets or []]
        return AccountSecrets(listed_names(listed))


def _named(error: Exception) -> str:
    return type(error).__name__
