"""``mamori check --registry-access``: the registry lookups of admission, for CI.

Off by default, so that a CI job without registry credentials still runs every other rule; on,
``image-signatures`` (and ``resolveImageTags``) are judged as the webhook judges them, with the
same verification, against the registries the manifests name. Credentials: ``--registry-
credentials`` (a Docker config file, the form `docker login` writes and a dockerconfigjson
Secret holds), else ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` when it
exists; only its ``auths`` entries are read (credential helpers are not run).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the flags are declared at every start; the registry code loads when used
    from pathlib import Path  # pathlib loads urllib.parse and ipaddress: ~6 ms of every start

    from mamori.supplychain.lookup import RegistryLookup

DEFAULT_TIMEOUT = 5.0
DEFAULT_BUDGET = 30.0


def add_arguments(check: argparse.ArgumentParser) -> None:
    group = check.add_argument_group("registry access (image-signatures, resolveImageTags)")
    group.add_argument(
        "--registry-access",
        action="store_true",
        help="ask registries for tag digests and signatures, as the webhook does (off: rules "
        "that need a registry are not judged, and the report says so)",
    )
    group.add_argument(
        "--registry-credentials",
        metavar="FILE",
        help="Docker config file with the registries' credentials (default: "
        "$DOCKER_CONFIG/config.json, then ~/.docker/config.json)",
    )
    group.add_argument(
        "--registry-ca-file",
        metavar="FILE",
        help="PEM CAs trusted for registries besides the system's",
    )
    group.add_argument(
        "--registry-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds one registry request may take (default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--registry-budget",
        type=float,
        default=DEFAULT_BUDGET,
        metavar="SECONDS",
        help=f"seconds all registry requests for one object may take (default {DEFAULT_BUDGET:g})",
    )


def credentials_path(given: str | None, environ: Mapping[str, str]) -> Path | None:
    """The Docker config file to read, or None (anonymous)."""
    from pathlib import Path

    if given:
        return Path(given)
    folder = environ.get("DOCKER_CONFIG")
    candidate = Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"
    return candidate if candidate.is_file() else None


def registry_lookups(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> Callable[[], RegistryLookup] | None:
    """A fresh lookup per judged object (each with its own budget), or None when off.

    Raises OSError, ssl.SSLError or CredentialsError for files that cannot be used, and
    ValueError for timings that are not positive.
    """
    if not args.registry_access:
        return None
    if not (args.registry_timeout > 0 and args.registry_budget > 0):
        raise ValueError("--registry-timeout and --registry-budget must be positive seconds")
    from pathlib import Path

    from mamori.supplychain.configured import credentials_file, registry_client
    from mamori.supplychain.credentials import CredentialSource
    from mamori.supplychain.live import EvidenceConfig, RegistryEvidence, RequestLookup

    ca_file = Path(args.registry_ca_file) if args.registry_ca_file else None
    client = registry_client(timeout=args.registry_timeout, ca_file=ca_file)
    evidence = RegistryEvidence(client, EvidenceConfig(budget=args.registry_budget))
    file = credentials_file(credentials_path(args.registry_credentials, environ))
    source = CredentialSource(configured=file.current() if file is not None else None)

    def lookup() -> RequestLookup:
        return evidence.for_request(source.credentials_for)

    return lookup
