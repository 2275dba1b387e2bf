"""The pod's imagePullSecrets at admission: read from the API server when an image needs them.

The kubelet pulls with the credentials of the pod's ``spec.imagePullSecrets``; with
``--pod-pull-secrets`` the webhook asks registries as the same identity. Secrets are read only
when a registry call needs credentials (a review whose answers are all cached reads none), with
a GET each, and kept per (namespace, name) for a short TTL in a bounded cache per worker: a
rotated Secret is seen within the TTL, and a busy namespace costs one GET per Secret per TTL.

A Secret that does not exist, may not be read, or is not a registry Secret does not fail the
review by itself: the kubelet skips it too and pulls with what is left. It is remembered as
absent for the TTL, logged once when found so, and named in the answer of any image that the
registry then refused, so the denial says which Secret was missing.

The ServiceAccount's imagePullSecrets need no read of their own: the ServiceAccount admission
plugin copies them into a Pod's ``spec.imagePullSecrets`` before validating webhooks see it.
A workload's pod template does not get them (its pods will, when created), so a template is
judged with its own Secrets and the webhook's configured credentials.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from mamori.images import ImageReference
from mamori.logs import log_context
from mamori.podspec import as_mapping
from mamori.supplychain.credentials import CredentialsError, CredentialSource
from mamori.supplychain.digest_cache import DigestCache
from mamori.supplychain.lookup import (
    DigestAnswer,
    Questions,
    RegistryLookup,
    SignatureAnswer,
    ask_ahead,
)
from mamori.supplychain.registry import Credentials
from mamori.supplychain.requirements import SignatureRequirement
from mamori.workloads import WORKLOAD_KINDS, api_group

LOG = logging.getLogger("mamori_webhook.pull_secrets")
# How long a Secret (or its absence) is reused, and how many are kept per worker.
SECRET_TTL = 30.0
SECRET_CACHE_ENTRIES = 1024
# The Secret types whose data the kubelet reads registry credentials from, and the key of each.
REGISTRY_SECRET_KEYS: Mapping[str, str] = {
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
    "kubernetes.io/dockercfg": ".dockercfg",
}


class PullSecretsUnavailable(CredentialsError):
    """``--pod-pull-secrets`` with no cluster to read Secrets from (a start-up error)."""


def image_pull_secret_names(resource: Mapping[str, Any]) -> tuple[str, ...]:
    """The names in the pod's (or pod template's) ``spec.imagePullSecrets``, in order.

    Entries without a name are skipped (the API server refuses them in a Pod; in a template
    they would name nothing). A Pod's list already holds its ServiceAccount's Secrets (the
    ServiceAccount admission plugin adds them before validating webhooks run): no extra read.
    """
    kind = WORKLOAD_KINDS.get(str(resource.get("kind")))
    if kind is None or api_group(resource.get("apiVersion")) not in kind.groups:
        return ()
    node = resource
    for key in kind.template_path:
        node = as_mapping(node.get(key))
    listed = as_mapping(node.get("spec")).get("imagePullSecrets")
    if not isinstance(listed, list):
        return ()
    names = (as_mapping(entry).get("name") for entry in listed)
    return tuple(name for name in names if isinstance(name, str) and name)


class PulledSecret(NamedTuple):
    """One Secret as the credential lookup uses it: its registry data, or why it has none.

    ``data`` is the decoded ``.dockerconfigjson``/``.dockercfg`` (empty when the Secret is of
    another type); None when it could not be had, and ``problem`` then says why, in words.
    """

    data: Mapping[str, bytes] | None
    problem: str = ""


SecretFetch = Callable[[str, str], PulledSecret]
"""(namespace, name) → the Secret, asked of the API server now."""


class KubeSecretFetch:
    """A GET of one Secret through the webhook's kubernetes ApiClient, within ``timeout``."""

    def __init__(self, api_client: Any, *, timeout: float) -> None:
        import kubernetes.client

        self._core = kubernetes.client.CoreV1Api(api_client)
        self._timeout = timeout

    def __call__(self, namespace: str, name: str) -> PulledSecret:
        from kubernetes.client.exceptions import ApiException

        where = f'Secret "{name}" in namespace "{namespace}"'
        try:
            secret = self._core.read_namespaced_secret(
                name, namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status == 404:
                return PulledSecret(None, f"{where} does not exist")
            if error.status in (401, 403):
                return PulledSecret(
                    None, f"the webhook may not read {where} (it needs get on secrets there)"
                )
            return PulledSecret(None, f"{where} could not be read (HTTP {error.status})")
        except Exception as error:  # unreachable API server, timeout: an answer, not a 500
            return PulledSecret(None, f"{where} could not be read ({type(error).__name__})")
        return registry_data(secret.type, secret.data or {}, where=where)


def registry_data(kind: str | None, data: Mapping[str, str], *, where: str) -> PulledSecret:
    """The registry key of a Secret's base64 ``data``, as the kubelet picks it by type."""
    key = REGISTRY_SECRET_KEYS.get(kind or "")
    if key is None:
        wanted = " or ".join(REGISTRY_SECRET_KEYS)
        return PulledSecret({}, f"{where} is of type {kind or 'Opaque'}, not {wanted}")
    if key not in data:
        return PulledSecret({}, f"{where} has no {key} key")
    try:
        return PulledSecret({key: base64.b64decode(data[key], validate=True)})
    except (binascii.Error, ValueError):
        return PulledSecret(None, f"{where}: {key} is not base64")


class PullSecretStore:
    """Per worker: Secrets by (namespace, name), each kept ``ttl`` seconds, absences too.

    Thread-safe (the cache is). Two threads missing the same Secret at once both GET it:
    rare, and cheaper than making every other review wait on a lock.
    """

    def __init__(
        self,
        fetch: SecretFetch,
        *,
        ttl: float = SECRET_TTL,
        max_entries: int = SECRET_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._cache: DigestCache[PulledSecret] = DigestCache(
            ttl=ttl, max_entries=max_entries, clock=clock
        )

    def get(self, namespace: str, name: str) -> PulledSecret:
        key = f"{namespace}/{name}"
        kept = self._cache.get(key)
        if kept is not None:
            return kept
        pulled = self._fetch(namespace, name)
        if pulled.problem:  # once per TTL: the answer is kept that long
            LOG.warning(
                "imagePullSecrets: %s; registries are asked without it",
                pulled.problem,
                extra=log_context(namespace=namespace, name=name),
            )
        self._cache.put(key, pulled)
        return pulled

    def for_pod(self, namespace: str, names: Sequence[str]) -> PodPullSecrets:
        """One review's view of the pod's Secrets; nothing is read until credentials are."""
        return PodPullSecrets(self, namespace, tuple(names))


class PodPullSecrets:
    """The pull Secrets of the pod under review, read on first use (one review, one thread)."""

    def __init__(self, store: PullSecretStore, namespace: str, names: tuple[str, ...]) -> None:
        self._store = store
        self._namespace = namespace
        self._names = names
        self._pulled: tuple[PulledSecret, ...] | None = None
        self._asked: set[ImageReference] = set()

    def _secrets(self) -> tuple[PulledSecret, ...]:
        if self._pulled is None:
            self._pulled = tuple(self._store.get(self._namespace, name) for name in self._names)
        return self._pulled

    def credentials_for(
        self, source: CredentialSource, reference: ImageReference
    ) -> Credentials | None:
        """``source``'s answer with the pod's Secrets first; an absent one counts as empty."""
        pulled = self._secrets()
        self._asked.add(reference)
        return source.credentials_for(
            reference,
            [secret.data or {} for secret in pulled],  # same length: names keep their index
            pull_secret_names=self._names,
        )

    def note_for(self, reference: ImageReference) -> str:
        """What a failed answer about ``reference`` should add: the Secrets that were missing
        when its credentials were picked ("" when none were, or none were picked)."""
        if reference not in self._asked or self._pulled is None:
            return ""
        problems = [secret.problem for secret in self._pulled if secret.problem]
        return f"imagePullSecrets: {'; '.join(problems)}" if problems else ""


class NotedLookup:
    """A review's :class:`RegistryLookup` whose failed answers name the missing pull Secrets."""

    def __init__(self, lookup: RegistryLookup, secrets: PodPullSecrets) -> None:
        self._lookup = lookup
        self._secrets = secrets

    def digest(self, reference: ImageReference) -> DigestAnswer:
        answer = self._lookup.digest(reference)
        note = "" if answer.digest is not None else self._secrets.note_for(reference)
        return answer._replace(problem=f"{answer.problem}; {note}") if note else answer

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        answer = self._lookup.signature(reference, digest, requirement)
        note = "" if answer.verified else self._secrets.note_for(reference)
        return answer._replace(detail=f"{answer.detail}; {note}") if note else answer

    def prefetch(self, questions: Questions) -> None:
        ask_ahead(self._lookup, questions)
