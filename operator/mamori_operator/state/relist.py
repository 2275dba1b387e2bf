"""Re-list: read the cluster from the API server and make it the operator's view, whole.

kopf restarts a watch with a fresh list after 410 Gone (an API-server restart, etcd compaction with
the watch cache off, a long network cut). It delivers every *listed* object again (as an event of
type None) but never says which objects vanished in the gap, so a view kept from events alone (as
kopf 1.45's own indexes are) keeps them. A DELETED event that never came must not leave a deleted
NetworkPolicy "in place" or a deleted policy enforced. So, like a controller-runtime informer whose
Reflector calls ``Replace`` on its store after every list, the operator lists policies, namespaces,
managed NetworkPolicies and ImageScans itself and replaces its view with the answer
(:meth:`~mamori_operator.state.cluster.ClusterState.replace_listed`);
the reconcilers then converge against
what is really there. The housekeeper runs it when kopf re-listed, after the API server was
unreachable, and every resync interval. Pods are not listed here: they come through the
operator's own list and watch (:mod:`~mamori_operator.state.pod_feed`), which lists them again
page by page, replacing the pod view in place, whenever its watch cannot resume.

The same lister *primes* the view at start-up (:meth:`ClusterLister.prime`), before kopf starts
a single watch, so that no handler ever decides on half a picture. kopf's own ``@kopf.index``
would give that guarantee too, but it holds every object's worker on one condition that wakes
them all whenever any object is indexed: start-up work grows with the square of the objects
(2,000 namespaces and 2,000 NetworkPolicies are millions of wake-ups).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mamori.policy import API_GROUP, PLURAL, VERSION
from mamori_operator.api.kube import Kube, KubeError, cluster_object_path
from mamori_operator.network.reconciler import record_from_object
from mamori_operator.scanning.providers import trivy_operator
from mamori_operator.scanning.scanner import IMAGESCAN_PLURAL, IMAGESCAN_VERSION
from mamori_operator.state.cluster import (
    ClusterState,
    ImageScanRecord,
    ListedObjects,
    RelistChanges,
)
from mamori_operator.state.records import image_scan_record, namespace_record, policy_record

logger = logging.getLogger(__name__)
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=mamori"
CONFIRM_AFTER_PRIME = 30.0
"""Seconds from the first resync to the second after a primed start: kopf has listed every kind
long before (it starts its watches as soon as the start-up handler returns)."""
NETWORK_POLICIES = "/apis/networking.k8s.io/v1/networkpolicies"


@dataclass
class ClusterLister:
    kube: Kube
    state: ClusterState
    top_findings: int = 20
    """Findings kept per VulnerabilityReport read at :meth:`prime` (the operator's setting)."""

    def prime(self) -> None:
        """Fill the empty view from the API before kopf watches anything (see the module
        docstring); raises KubeError when the API is away.

        VulnerabilityReports are read here only, not at every re-list: they are large, and a
        cluster without Trivy Operator has no such resource (404: nothing to read).
        """
        self.relist()
        reports = cluster_object_path(
            trivy_operator.GROUP, trivy_operator.VERSION, trivy_operator.PLURAL
        )
        try:
            for body in self.kube.list_all(reports, resource=trivy_operator.PLURAL):
                key = trivy_operator.report_key(body)
                if key is not None:
                    report = trivy_operator.report_from_object(body, top=self.top_findings)
                    self.state.set_vulnerability_report(key, report)
        except KubeError as error:
            if error.status != 404:  # 404: Trivy Operator is not installed
                raise

    def read(self) -> ListedObjects:
        """Every object the operator keeps, as the API server has them now."""
        policies = [
            policy_record(body)
            for body in self.kube.list_all(
                cluster_object_path(API_GROUP, VERSION, PLURAL), resource=PLURAL
            )
        ]
        namespaces = [
            namespace_record(body)
            for body in self.kube.list_all("/api/v1/namespaces", resource="namespaces")
        ]
        network_policies = [
            record_from_object(body)
            for body in self.kube.list_all(
                NETWORK_POLICIES, resource="networkpolicies", label_selector=MANAGED_SELECTOR
            )
        ]
        scans: dict[str, ImageScanRecord] = {}
        for body in self.kube.list_all(
            cluster_object_path(API_GROUP, IMAGESCAN_VERSION, IMAGESCAN_PLURAL),
            resource=IMAGESCAN_PLURAL,
        ):
            record = image_scan_record(body)
            if record is not None:
                scans[str(record.spec["digest"])] = record
        return ListedObjects(
            policies=policies,
            namespaces=namespaces,
            network_policies=network_policies,
            pods=None,  # the pod feed lists pods itself (state/pod_feed.py)
            image_scans=scans,
        )

    def relist(self) -> RelistChanges:
        """Read the cluster and replace the view; raises KubeError when the API is away."""
        self.state.begin_relist()
        try:
            listed = self.read()
        except BaseException:
            self.state.abandon_relist()
            raise
        changes = self.state.replace_listed(listed)
        if changes:
            logger.info(
                "re-list changed the view: %d policies, %d namespaces, %d NetworkPolicies, "
                "%d pods, %d ImageScans",
                len(changes.policies),
                len(changes.namespaces),
                len(changes.network_policies),
                len(changes.pods),
                len(changes.image_scans),
            )
        return changes
