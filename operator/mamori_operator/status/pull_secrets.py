"""The running pod's imagePullSecrets for the audit, read through the operator's own client.

With ``--registry-pod-pull-secrets`` the audit asks registries as the kubelet pulled: with the
Secrets the pod names (a running Pod's ``spec.imagePullSecrets`` already holds its
ServiceAccount's, which the API server copied in at creation, so no ServiceAccount is read).
The store, its 30 s cache and the rules for absent Secrets are the core's
(:mod:`mamori.supplychain.pull_secrets`, as the webhook uses them); this module is the GET, one
per Secret per TTL, through :class:`~mamori_operator.api.kube.Kube` (counted like every other
call), within the registry timeout: the audit pass waits on it.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from mamori.supplychain.pull_secrets import (
    PulledSecret,
    PullSecretStore,
    registry_data,
    secret_where,
    unreadable,
)
from mamori_operator.api.kube import Kube, KubeError

logger = logging.getLogger(__name__)
READER = "the operator"


class KubeSecretFetch:
    """A GET of one Secret through the operator's :class:`Kube`, within ``timeout``."""

    def __init__(self, kube: Kube, *, timeout: float) -> None:
        self._kube = kube
        self._timeout = timeout

    def __call__(self, namespace: str, name: str) -> PulledSecret:
        where = secret_where(namespace, name)
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets/{quote(name, safe='')}"
        try:
            secret = self._kube.request("GET", path, resource="secrets", timeout=self._timeout)
        except KubeError as error:
            problem = unreadable(
                where, error.status or None, reader=READER, resource="secrets", why=error.reason
            )
            return PulledSecret(None, problem)
        data = secret.get("data")
        return registry_data(
            str(secret.get("type") or ""), data if isinstance(data, dict) else {}, where=where
        )


def audit_pull_secrets(kube: Kube, *, timeout: float) -> PullSecretStore:
    """The audit's store of pull Secrets (no ServiceAccount reader: see the module's note)."""
    return PullSecretStore(KubeSecretFetch(kube, timeout=timeout), log=logger)
