"""Registry credentials as a cluster has them: image pull Secrets, matched the kubelet's way.

The kubelet pulls an image with the credentials of the pod's imagePullSecrets (then the node's
own). A check that resolves or verifies the image at admission must ask the registry as the same
identity, or it judges what another identity sees. This module reads the two Secret types that
hold registry credentials into a :class:`Keyring` and picks an image's credentials the way the
kubelet's keyring does; :class:`CredentialSource` puts the pod's Secrets, a configured Secret
and a token provider (Amazon ECR, wired in by the webhook) in the order the kubelet tries them.

Pure and standard library only: the caller reads the Secrets, and a cloud SDK stays in the
deployable that plugs its token provider in. Errors name the Secret, its key and the entry,
never a password (the :class:`~mamori.supplychain.registry.Credentials` repr hides both fields).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from mamori.images import DOCKER_HUB, ImageReference, parse_reference, split_port
from mamori.supplychain.registry import Credentials

# The data keys of kubernetes.io/dockerconfigjson and (legacy) kubernetes.io/dockercfg Secrets.
DOCKER_CONFIG_JSON_KEY: Final = ".dockerconfigjson"
ANSWERS_KEPT: Final = 1024  # images whose credentials a keyring remembers
DOCKER_CFG_KEY: Final = ".dockercfg"
# The user name Docker's credential helpers give an identity token (an OAuth2 refresh token).
IDENTITY_TOKEN_USERNAME: Final = "<token>"
# Docker's own name for Docker Hub in config files: used for docker.io images that nothing else
# matches (as the kubelet does).
LEGACY_DOCKER_HUB_KEY: Final = "index.docker.io"
# An entry's name is quoted in errors; a longer one is cut.
ENTRY_NAME_QUOTED_MAX = 120


class CredentialsError(Exception):
    """An image's registry credentials could not be had; the message says where, never a
    secret."""


class MalformedPullSecret(CredentialsError, ValueError):
    """A pull Secret whose data is not a Docker config; names the Secret, key and entry."""


class TokenProviderError(CredentialsError):
    """A token provider (say, Amazon ECR's GetAuthorizationToken) failed; names the registry."""


@dataclass(frozen=True, slots=True)
class KeyringEntry:
    """One registry entry of a Docker config: where it applies, and its credentials.

    ``host`` is lower-case and may hold glob labels (``*.registry.example``); ``path`` is ""
    or a prefix starting with "/" that an image's path must start with (a plain string prefix,
    as the kubelet compares it). ``source`` says which Secret and entry it came from.
    """

    host: str
    port: str | None
    path: str
    credentials: Credentials = field(repr=False)
    source: str

    def matches(self, reference: ImageReference) -> bool:
        """The kubelet's rule: same port, as many host labels, each label matching its glob,
        and the entry's path a prefix of the image's."""
        if self.port != reference.port:
            return False
        labels, wanted = reference.hostname.split("."), self.host.split(".")
        if len(labels) != len(wanted):
            return False
        if not f"/{reference.path}".startswith(self.path):
            return False
        return all(_label_matches(label, glob) for label, glob in zip(labels, wanted, strict=True))

    def specificity(self) -> tuple[int, int]:
        """Which of several matching entries wins: the longer path, then fewer glob labels."""
        globs = sum(1 for label in self.host.split(".") if _is_glob(label))
        return len(self.path), -globs


def _is_glob(label: str) -> bool:
    return not label.startswith("[") and any(character in label for character in "*?[")


def _label_matches(label: str, glob: str) -> bool:
    # a bracketed IPv6 host is a name, not a character class
    return label == glob or (_is_glob(glob) and fnmatch.fnmatchcase(label, glob))


class Keyring:
    """Registry credentials from one or more pull Secrets, in the order they were given."""

    def __init__(self, entries: Iterable[KeyringEntry] = ()) -> None:
        self._entries = tuple(entries)
        # image (registry and path) → its credentials: a keyring never changes, and admission
        # asks about the same few repositories again and again (bounded: hostile names)
        self._answers: dict[tuple[str, str], Credentials | None] = {}

    @classmethod
    def from_secret_data(
        cls, data: Mapping[str, bytes | str], *, secret: str = "Secret"
    ) -> Keyring:
        """The entries of one Secret's (decoded) data: ``.dockerconfigjson`` or ``.dockercfg``.

        Data with neither key is not a registry Secret and gives an empty keyring (the kubelet
        skips it too). ``secret`` names the Secret in errors, e.g. ``Secret "team/regcred"``.
        """
        for key, nested in ((DOCKER_CONFIG_JSON_KEY, True), (DOCKER_CFG_KEY, False)):
            raw = data.get(key)
            if raw:
                return cls(_entries_of(raw, where=f"{secret} key {key}", nested=nested))
        return cls()

    @classmethod
    def merged(cls, keyrings: Iterable[Keyring]) -> Keyring:
        """One keyring of several: on equally specific matches, the earlier keyring wins."""
        return cls(entry for keyring in keyrings for entry in keyring.entries)

    @property
    def entries(self) -> tuple[KeyringEntry, ...]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Keyring({[entry.source for entry in self._entries]!r})"

    def matching(self, reference: str | ImageReference) -> tuple[KeyringEntry, ...]:
        """Every entry that applies to the image, the winner first (most specific, then the
        earliest); the Docker Hub entry only when nothing else applies to a docker.io image."""
        if isinstance(reference, str):
            reference = parse_reference(reference)
        found = [entry for entry in self._entries if entry.matches(reference)]
        if not found and reference.registry == DOCKER_HUB:
            found = [entry for entry in self._entries if _is_docker_hub_fallback(entry)]
        # sorted() is stable: equally specific entries keep the order they were given in
        return tuple(sorted(found, key=lambda entry: entry.specificity(), reverse=True))

    def for_image(self, reference: str | ImageReference) -> Credentials | None:
        """The credentials the kubelet would try first for the image, or None."""
        if isinstance(reference, str):
            reference = parse_reference(reference)
        if not self._entries:
            return None
        key = (reference.domain, reference.path)
        try:
            return self._answers[key]
        except KeyError:
            pass
        found = self.matching(reference)
        answer = found[0].credentials if found else None
        if len(self._answers) >= ANSWERS_KEPT:
            self._answers.clear()
        self._answers[key] = answer
        return answer


def _is_docker_hub_fallback(entry: KeyringEntry) -> bool:
    return (entry.host, entry.port, entry.path) == (LEGACY_DOCKER_HUB_KEY, None, "")


# --- parsing ----------------------------------------------------------------------------------


def _entries_of(raw: bytes | str, *, where: str, nested: bool) -> list[KeyringEntry]:
    document = _json_object(raw, where)
    if nested:
        auths = document.get("auths")
        if not isinstance(auths, dict):
            raise MalformedPullSecret(f'{where}: no "auths" object')
        document = auths
    entries = []
    for name, entry in document.items():
        entry_where = f"{where}, entry {_quoted_entry_name(name)}"
        host, port, path = parse_registry_key(name, where=entry_where)
        credentials = _entry_credentials(entry, where=entry_where)
        entries.append(KeyringEntry(host, port, path, credentials, source=entry_where))
    return entries


def _quoted_entry_name(name: str) -> str:
    """The entry's name for an error: cut short, and without a ``user:password@`` part."""
    if "@" in name:
        name = "…@" + name.rpartition("@")[2]
    return repr(name[:ENTRY_NAME_QUOTED_MAX])


def _json_object(raw: bytes | str, where: str) -> dict[str, object]:
    try:
        document = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError:
        raise MalformedPullSecret(f"{where}: not UTF-8") from None
    except json.JSONDecodeError as error:
        # msg and position only: the document may hold passwords
        raise MalformedPullSecret(
            f"{where}: not JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    if not isinstance(document, dict):
        raise MalformedPullSecret(f"{where}: not a JSON object")
    return document


def parse_registry_key(name: str, *, where: str = "entry") -> tuple[str, str | None, str]:
    """(host, port, path prefix) of a Docker config key, tolerating what the kubelet tolerates:
    an ``https://`` or ``http://`` prefix, and a ``/v1/`` or ``/v2/`` path that means the
    registry itself (``https://index.docker.io/v1/`` is Docker Hub)."""
    text = name.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        url = urllib.parse.urlsplit(text)
    except ValueError:
        raise MalformedPullSecret(f"{where}: not a registry host[:port][/path]") from None
    if url.scheme not in ("https", "http") or not url.netloc or "@" in url.netloc:
        raise MalformedPullSecret(f"{where}: not a registry host[:port][/path]")
    host, port = split_port(url.netloc)
    if not host or (port is not None and not port.isdigit()):
        raise MalformedPullSecret(f"{where}: not a registry host[:port][/path]")
    path = url.path
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    return host.lower(), port, "" if path in ("", "/") else path


def _entry_credentials(entry: object, *, where: str) -> Credentials:
    if not isinstance(entry, dict):
        raise MalformedPullSecret(f"{where}: not an object")
    fields = {}
    for name in ("auth", "username", "password", "identitytoken"):
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            raise MalformedPullSecret(f"{where}: {name} is not a string")
        fields[name] = value or ""
    username, password = fields["username"], fields["password"]
    if fields["auth"]:
        username, password = _decode_auth(fields["auth"], where=where)
    if fields["identitytoken"]:
        return Credentials(username or IDENTITY_TOKEN_USERNAME, fields["identitytoken"])
    if username:
        return Credentials(username, password)
    raise MalformedPullSecret(f"{where}: no auth, username and password, or identitytoken")


def _decode_auth(auth: str, *, where: str) -> tuple[str, str]:
    """``auth`` is base64("username:password"), as ``docker login`` and kubectl write it."""
    try:
        pair = base64.b64decode(auth.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedPullSecret(f'{where}: auth is not base64("username:password")') from None
    username, colon, password = pair.partition(":")
    if not colon:
        raise MalformedPullSecret(f'{where}: auth is not base64("username:password")')
    return username, password


# --- composition ------------------------------------------------------------------------------


class TokenProvider(Protocol):
    """Credentials made on demand for registries that issue short-lived tokens (Amazon ECR):
    None for an image it does not serve; :class:`TokenProviderError` when it failed."""

    def __call__(self, reference: ImageReference) -> Credentials | None: ...


class CredentialSource:
    """An image's credentials at admission, in the order the kubelet tries them: the pod's
    imagePullSecrets (together: the most specific entry wins, the earlier Secret on a tie),
    then the configured Secret, then the token provider.

    ``configured`` is parsed once, at start (a malformed one fails there); the pod's Secrets
    are parsed per call. Thread-safe: nothing changes after construction.
    """

    def __init__(
        self, *, configured: Keyring | None = None, token_provider: TokenProvider | None = None
    ) -> None:
        self._configured = configured or Keyring()
        self._token_provider = token_provider

    def credentials_for(
        self,
        reference: str | ImageReference,
        pull_secrets: Sequence[Mapping[str, bytes | str]] = (),
        *,
        pull_secret_names: Sequence[str] = (),
    ) -> Credentials | None:
        """The credentials to ask the registry about the image with, or None (anonymous).

        ``pull_secrets`` are the data of the pod's imagePullSecrets, in the pod's order;
        ``pull_secret_names`` (same order) name them in errors. Raises
        :class:`MalformedPullSecret` or :class:`TokenProviderError`.
        """
        if isinstance(reference, str):
            reference = parse_reference(reference)
        keyrings = []
        for index, data in enumerate(pull_secrets):
            name = pull_secret_names[index] if index < len(pull_secret_names) else None
            label = f"imagePullSecrets[{index}]" + (f' Secret "{name}"' if name else "")
            keyrings.append(Keyring.from_secret_data(data, secret=label))
        # the pod's Secrets as one keyring (the most specific entry wins), then the configured
        # Secret: the kubelet tries all of a pod's pull Secrets before the node's credentials
        if keyrings:
            found = Keyring.merged(keyrings).for_image(reference)
            if found is not None:
                return found
        found = self._configured.for_image(reference)
        if found is not None:
            return found
        return None if self._token_provider is None else self._token_provider(reference)
