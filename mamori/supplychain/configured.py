"""What a deployment gives every registry caller: a CA file, a credentials file, timeouts.

The webhook, the operator and ``mamori check --registry-access`` read the same two files (the
chart mounts the same ConfigMap or Secret into both processes) and build the same client from
them, here: :func:`registry_client` and :func:`credentials_file`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mamori.supplychain.credentials import (
    DOCKER_CONFIG_JSON_KEY,
    CredentialsError,
    CredentialSource,
    Keyring,
    TokenProvider,
)
from mamori.supplychain.registry import RegistryClient, RegistryClientConfig

LOG = logging.getLogger("mamori.supplychain")


def registry_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's CAs, plus ``ca_file`` (PEM) when given; TLS 1.2 at least.

    Raises OSError or ssl.SSLError for a CA file that cannot be used.
    """
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class CredentialsFile:
    """A dockerconfigjson file (a mounted kubernetes.io/dockerconfigjson Secret's key) as a
    keyring, re-read when its modification time or size changes: a rotated Secret needs no
    restart. A file that becomes unreadable leaves the last good keyring in force, logged and
    never echoed."""

    def __init__(
        self, path: Path, *, clock: Callable[[], float] = time.monotonic, every: float = 1.0
    ) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._keyring = Keyring()
        self._clock = clock
        self._every = every  # seconds between two looks at the file: admission asks often
        self._looked = float("-inf")

    def load(self) -> Keyring:
        """Read the file now; raises OSError or CredentialsError (at start: a usage error)."""
        stat = self._path.stat()
        keyring = Keyring.from_secret_data(
            {DOCKER_CONFIG_JSON_KEY: self._path.read_bytes()},
            secret=f"registry credentials file {self._path}",
        )
        with self._lock:
            self._keyring, self._seen = keyring, (stat.st_mtime_ns, stat.st_size)
        return keyring

    def current(self) -> Keyring:
        """The keyring of the file as it is now, seen within ``every`` seconds (the last good
        one if it became unreadable)."""
        now = self._clock()
        if now - self._looked < self._every:
            return self._keyring
        self._looked = now
        try:
            stat = os.stat(self._path)
            if (stat.st_mtime_ns, stat.st_size) != self._seen:
                return self.load()
        except (OSError, CredentialsError) as error:
            LOG.warning(
                "registry credentials file %s: %s; the previous credentials stay in force",
                self._path,
                type(error).__name__ if isinstance(error, OSError) else error,
            )
        with self._lock:
            return self._keyring


class ConfiguredCredentials:
    """What a deployable is configured to pull with (a mounted credentials file, a token
    provider) as one :class:`CredentialSource`, made again only when the file's keyring
    changes: every review or audited pod would otherwise build its own."""

    def __init__(
        self, file: CredentialsFile | None = None, token_provider: TokenProvider | None = None
    ) -> None:
        self._file = file
        self._token_provider = token_provider
        self._kept: tuple[Keyring | None, CredentialSource] | None = None

    def current(self) -> CredentialSource:
        keyring = self._file.current() if self._file is not None else None
        kept = self._kept
        if kept is not None and kept[0] is keyring:
            return kept[1]
        source = CredentialSource(configured=keyring, token_provider=self._token_provider)
        self._kept = (keyring, source)
        return source


def registry_client(
    *, timeout: float, ca_file: Path | None, cache_ttl: float | None = None
) -> RegistryClient:
    """A client trusting the system's CAs and ``ca_file``, ``timeout`` seconds per request
    (``cache_ttl``: the tag cache's lifetime; None: the client's default). Raises OSError or
    ssl.SSLError for a CA file that cannot be used."""
    config = RegistryClientConfig(deadline=timeout, ssl_context=registry_tls_context(ca_file))
    if cache_ttl is not None:
        config = dataclasses.replace(config, cache_ttl=cache_ttl)
    return RegistryClient(config)


def credentials_file(path: Path | None) -> CredentialsFile | None:
    """The credentials file at ``path``, read now (so that a bad one stops the start: OSError
    or CredentialsError), or None without one."""
    if path is None:
        return None
    file = CredentialsFile(path)
    file.load()
    return file
