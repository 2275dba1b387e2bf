"""What a deployment gives both processes for registries: a CA file and a credentials file.

The webhook and the operator read the same two files (the chart mounts the same ConfigMap or
Secret into both), so they read them the same way, here.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mamori.supplychain.credentials import DOCKER_CONFIG_JSON_KEY, CredentialsError, Keyring

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
