"""What every scan provider implements, and what it is given to look an image up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mamori_operator.scanning.model import ProviderAnswer

if TYPE_CHECKING:  # the wiring only names them; importing would tie providers to the process
    from mamori_operator.config import OperatorConfig
    from mamori_operator.state.cluster import ClusterState


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


@dataclass(frozen=True)
class ProviderWiring:
    """What a provider may be built from: the operator's settings and its view of the cluster."""

    config: OperatorConfig
    state: ClusterState
