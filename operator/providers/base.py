"""What every scan provider implements, and what it is given to look an image up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mamori.operator.scan_model import ProviderAnswer


@dataclass(frozen=True, slots=True)
class ScanTarget:
    """One container image of one pod, with the workload that owns the pod.

    ``owner_kind``/``owner_name`` is the pod's controller (a ReplicaSet, StatefulSet, Job, …)
    or the pod itself; Trivy Operator files its reports under that owner.
    """

    digest: str
    image: str
    namespace: str
    owner_kind: str
    owner_name: str
    container: str


class ScanProvider(Protocol):
    """A source of scan results.

    ``lookup`` returns None when the provider does not apply to the image (an ECR provider and
    an image from another registry), so the next provider is asked. ``scope`` says how widely an
    answer may be reused: ``""`` for every pod with the digest, else a finer key.
    """

    name: str

    def lookup(self, target: ScanTarget) -> ProviderAnswer | None: ...

    def scope(self, target: ScanTarget) -> str: ...
