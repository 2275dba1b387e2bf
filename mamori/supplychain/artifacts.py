"""Reading signature artifacts from a registry: what cosign and Notation verification share.

Signatures live next to the image in its repository: tagged by the digest they sign (the
``sha256-<hex>`` tag schema) or listed by the referrers API. An :class:`ArtifactSource` reads
them, bounded and checked against the digest asked for; everything read is hostile until
verified, so the helpers here refuse any shape they do not expect with :class:`BadContent`,
whose message becomes the verdict's reason, never an exception that escapes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from mamori.images import ImageReference
from mamori.supplychain.registry import Credentials, RegistryClient

SHA256_DIGEST_RE: Final = re.compile(r"sha256:([0-9a-f]{64})", re.ASCII)
# Signatures looked at per form: a registry that lists thousands is not trying to help.
MAX_CANDIDATES: Final = 32


class ArtifactSource(Protocol):
    """Bounded reads from the image's repository (registry.RegistryClient, bound to one repo).

    Each returns the content (checked against the digest asked for) or None when absent.
    """

    def manifest(self, tag_or_digest: str) -> bytes | None: ...

    def referrers(self, digest: str) -> bytes | None: ...

    def blob(self, digest: str) -> bytes | None: ...


class BadContent(Exception):
    """Content of a shape a verifier refuses; its message is the verdict's reason."""


def fallback_tag(digest: str) -> str:
    """The tag-schema name of ``digest``'s artifacts: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadContent(f"the {what} is not JSON") from None
    if not isinstance(document, dict):
        raise BadContent(f"the {what} is not a JSON object")
    return document


def required(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind):
        raise BadContent(f"{name!r} is missing or not a {kind.__name__}")
    return value


def descriptor_digest(descriptor: dict[str, Any]) -> str:
    value = descriptor.get("digest")
    if not isinstance(value, str) or not SHA256_DIGEST_RE.fullmatch(value):
        raise BadContent("a descriptor's digest is not sha256:<64 hex>")
    return value


def base64_field(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadContent(f"the {what} is not base64") from None


@dataclass(frozen=True, slots=True)
class RepositorySource:
    """An :class:`ArtifactSource` over one repository of a registry.RegistryClient."""

    client: RegistryClient
    reference: ImageReference
    credentials: Credentials | None = None
    time_left: Callable[[], float] | None = None
    """The caller's remaining budget (seconds), capping every call's deadline; None: none."""

    def _left(self) -> float | None:
        return None if self.time_left is None else self.time_left()

    def manifest(self, tag_or_digest: str) -> bytes | None:
        fetched = self.client.get_manifest(
            self.reference, tag_or_digest, credentials=self.credentials, time_left=self._left()
        )
        return None if fetched is None else fetched.body

    def referrers(self, digest: str) -> bytes | None:
        fetched = self.client.get_referrers(
            self.reference, digest, credentials=self.credentials, time_left=self._left()
        )
        return None if fetched is None else fetched.body

    def blob(self, digest: str) -> bytes | None:
        fetched = self.client.get_blob(
            self.reference, digest, credentials=self.credentials, time_left=self._left()
        )
        return None if fetched is None else fetched.body
