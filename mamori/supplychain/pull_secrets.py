"""The pull Secrets a pod's images are pulled with, read when a registry call needs them.

The kubelet pulls with the credentials of the pod's ``spec.imagePullSecrets``; the webhook (at
admission, ``--pod-pull-secrets``) and the operator's audit (``--registry-pod-pull-secrets``)
ask registries as the same identity. What both need is here: which names a pod or pod template
lists (:func:`image_pull_secret_names`), what a Secret's data gives (:func:`registry_data`), a
store that keeps each Secret, and each absence, for a short TTL (:class:`PullSecretStore`), and
one pod's view of its Secrets that reads nothing until credentials are asked for
(:class:`PodPullSecrets`). Each deployable reads Secrets with its own API client and hands the
store a :data:`SecretFetch`; the core makes no API call.

A Secret that does not exist, may not be read, or is not a registry Secret is no failure by
itself: the kubelet skips it too and pulls with what is left. It is remembered as absent for
the TTL, logged once when found so, and named in the answer of any image that the registry then
refused (:meth:`PodPullSecrets.note_for`, which the registry lookup adds to its failed answers).

The ServiceAccount's imagePullSecrets: the ServiceAccount admission plugin copies them into a
Pod that lists none, before validating webhooks see it, so a Pod (and a running pod) needs no
extra read. A workload's pod template does not get them; its pods will, when created, if the
template lists none. For such a template the store reads the ServiceAccount its pods will run as
(``serviceAccountName``, else ``default``) with a :data:`AccountFetch`, when credentials are
first needed, and kept like a Secret. A ServiceAccount that does not exist (yet) is no failure
by itself either: the template is judged with what is left, and a refusal names it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Self

from mamori.images import ImageReference
from mamori.logs import log_context
from mamori.podspec import as_mapping
from mamori.supplychain.credentials import CredentialSource
from mamori.supplychain.digest_cache import DigestCache
from mamori.supplychain.registry import Credentials
from mamori.workloads import WORKLOAD_KINDS, api_group

LOG = logging.getLogger("mamori.supplychain.pull_secrets")
# How long a Secret (or its absence) is reused, and how many are kept per process.
SECRET_TTL = 30.0
SECRET_CACHE_ENTRIES = 1024
# The Secret types whose data the kubelet reads registry credentials from, and the key of each.
REGISTRY_SECRET_KEYS: Mapping[str, str] = {
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
    "kubernetes.io/dockercfg": ".dockercfg",
}
DEFAULT_SERVICE_ACCOUNT = "default"


class PullSecretNames(tuple[str, ...]):
    """The names a pod or pod template lists in ``imagePullSecrets``, in order; for a template
    that lists none, ``service_account`` names the ServiceAccount whose Secrets its pods will
    get (None for a Pod: the API server has already copied them in)."""

    service_account: str | None

    def __new__(cls, names: Sequence[str] = (), service_account: str | None = None) -> Self:
        made = super().__new__(cls, names)
        made.service_account = service_account
        return made


def image_pull_secret_names(resource: Mapping[str, Any]) -> PullSecretNames:
    """The names in the pod's (or pod template's) ``spec.imagePullSecrets``, in order.

    Entries without a name are skipped (the API server refuses them in a Pod; in a template
    they would name nothing). A Pod's list already holds its ServiceAccount's Secrets (the
    ServiceAccount admission plugin adds them before validating webhooks run): no extra read.
    A template that lists none gets the ServiceAccount its pods will run as.
    """
    kind = WORKLOAD_KINDS.get(str(resource.get("kind")))
    if kind is None or api_group(resource.get("apiVersion")) not in kind.groups:
        return PullSecretNames()
    node = resource
    for key in kind.template_path:
        node = as_mapping(node.get(key))
    spec = as_mapping(node.get("spec"))
    names = listed_names(spec.get("imagePullSecrets"))
    if names or not kind.template_path:
        return PullSecretNames(names)
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if not isinstance(account, str) or not account:
        account = DEFAULT_SERVICE_ACCOUNT
    return PullSecretNames((), service_account=account)


def listed_names(listed: object) -> tuple[str, ...]:
    """The names of an ``imagePullSecrets`` list (a pod's or a ServiceAccount's)."""
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


class AccountSecrets(NamedTuple):
    """A ServiceAccount's ``imagePullSecrets`` names, or why they could not be had."""

    names: tuple[str, ...]
    problem: str = ""


SecretFetch = Callable[[str, str], PulledSecret]
"""(namespace, name) → the Secret, asked of the API server now."""

AccountFetch = Callable[[str, str], AccountSecrets]
"""(namespace, name) → the ServiceAccount's imagePullSecrets, asked of the API server now."""


def secret_where(namespace: str, name: str) -> str:
    return f'Secret "{name}" in namespace "{namespace}"'


def account_where(namespace: str, name: str) -> str:
    return f'ServiceAccount "{name}" in namespace "{namespace}"'


def unreadable(where: str, status: int | None, *, reader: str, resource: str, why: str = "") -> str:
    """Why a GET of ``where`` gave nothing, in words: absent, forbidden to ``reader`` (which
    then needs ``get`` on ``resource``), or failed (``status``, else ``why``)."""
    if status == 404:
        return f"{where} does not exist"
    if status in (401, 403):
        return f"{reader} may not read {where} (it needs get on {resource} there)"
    return f"{where} could not be read ({f'HTTP {status}' if status else why or 'no answer'})"


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
    """Per process: Secrets and ServiceAccounts by (namespace, name), each kept ``ttl``
    seconds, absences too.

    Thread-safe (the caches are). Two threads missing the same Secret at once both GET it:
    rare, and cheaper than making every other caller wait on a lock. Without ``accounts`` no
    ServiceAccount is read (a template is judged with its own Secrets).
    """

    def __init__(
        self,
        fetch: SecretFetch,
        *,
        accounts: AccountFetch | None = None,
        ttl: float = SECRET_TTL,
        max_entries: int = SECRET_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = LOG,
    ) -> None:
        self._fetch = fetch
        self._accounts = accounts
        self._log = log
        self._cache: DigestCache[PulledSecret] = DigestCache(
            ttl=ttl, max_entries=max_entries, clock=clock
        )
        self._account_cache: DigestCache[AccountSecrets] = DigestCache(
            ttl=ttl, max_entries=max_entries, clock=clock
        )

    def get(self, namespace: str, name: str) -> PulledSecret:
        key = f"{namespace}/{name}"
        kept = self._cache.get(key)
        if kept is not None:
            return kept
        pulled = self._fetch(namespace, name)
        if pulled.problem:  # once per TTL: the answer is kept that long
            self._log.warning(
                "imagePullSecrets: %s; registries are asked without it",
                pulled.problem,
                extra=log_context(namespace=namespace, name=name),
            )
        self._cache.put(key, pulled)
        return pulled

    def account(self, namespace: str, name: str) -> AccountSecrets:
        """The ServiceAccount's imagePullSecrets names (none without an account reader)."""
        if self._accounts is None:
            return AccountSecrets(())
        key = f"{namespace}/{name}"
        kept = self._account_cache.get(key)
        if kept is not None:
            return kept
        found = self._accounts(namespace, name)
        if found.problem:
            self._log.info(
                "imagePullSecrets: %s; the pod template is judged without its Secrets",
                found.problem,
                extra=log_context(namespace=namespace, name=name),
            )
        self._account_cache.put(key, found)
        return found

    def for_pod(
        self, namespace: str, names: Sequence[str], *, service_account: str | None = None
    ) -> PodPullSecrets:
        """One pod's (or template's) view of its Secrets; nothing is read until credentials
        are. ``service_account``: whose Secrets a template that lists none will get."""
        return PodPullSecrets(self, namespace, tuple(names), service_account)


class PodPullSecrets:
    """The pull Secrets of one pod, read on first use (one review or audit, one thread)."""

    def __init__(
        self,
        store: PullSecretStore,
        namespace: str,
        names: tuple[str, ...],
        service_account: str | None = None,
    ) -> None:
        self._store = store
        self._namespace = namespace
        self._names = names
        self._service_account = service_account
        self._pulled: tuple[PulledSecret, ...] | None = None
        self._problems: list[str] = []
        self._asked: set[ImageReference] = set()

    def _secrets(self) -> tuple[PulledSecret, ...]:
        if self._pulled is None:
            if not self._names and self._service_account:
                found = self._store.account(self._namespace, self._service_account)
                self._names = found.names
                if found.problem:
                    self._problems.append(found.problem)
            self._pulled = tuple(self._store.get(self._namespace, name) for name in self._names)
            self._problems.extend(secret.problem for secret in self._pulled if secret.problem)
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
        """What a failed answer about ``reference`` should add: the Secrets (or the
        ServiceAccount) that were missing when its credentials were picked ("" when none
        were, or none were picked)."""
        if reference not in self._asked or not self._problems:
            return ""
        return f"imagePullSecrets: {'; '.join(self._problems)}"
