"""Kubernetes Events, so that ``kubectl describe`` tells admins what the operator did and why.

Posting an Event is best effort: a failure is logged and never fails the work it reports on.
Events about cluster-scoped objects (policies) go to the ``default`` namespace, where
``kubectl describe csp`` finds them.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mamori_operator.api.kube import Kube, KubeError

logger = logging.getLogger(__name__)
COMPONENT = "mamori-operator"
CLUSTER_EVENTS_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    uid: str = ""
    namespace: str | None = None

    def to_dict(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.uid:
            ref["uid"] = self.uid
        if self.namespace:
            ref["namespace"] = self.namespace
        return ref


class EventRecorder:
    def __init__(self, kube: Kube, *, instance: str) -> None:
        self.kube = kube
        self.instance = instance

    def normal(self, subject: ObjectRef, *, reason: str, message: str) -> None:
        self.post(subject, kind="Normal", reason=reason, message=message)

    def warning(self, subject: ObjectRef, *, reason: str, message: str) -> None:
        self.post(subject, kind="Warning", reason=reason, message=message)

    def post(self, subject: ObjectRef, *, kind: str, reason: str, message: str) -> None:
        namespace = subject.namespace or CLUSTER_EVENTS_NAMESPACE
        try:
            self.kube.create(
                f"/api/v1/namespaces/{namespace}/events",
                build_event(
                    subject,
                    namespace=namespace,
                    kind=kind,
                    reason=reason,
                    message=message,
                    instance=self.instance,
                ),
                resource="events",
            )
        except KubeError as error:
            logger.warning("could not post event %s on %s: %s", reason, subject.name, error)


def build_event(
    subject: ObjectRef, *, namespace: str, kind: str, reason: str, message: str, instance: str
) -> Mapping[str, Any]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{subject.name[:200]}.", "namespace": namespace},
        "involvedObject": subject.to_dict(),
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
