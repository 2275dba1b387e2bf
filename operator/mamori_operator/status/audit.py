"""Background audit: judge running pods with the same engine as the admission webhook.

A pod admitted before a policy existed (or while it was in Audit mode) may break it; the audit
finds those. Results are cached per pod and recomputed only when the pod, the policies or the
namespace labels change, so a status refresh over thousands of pods stays cheap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mamori.engine import evaluate
from mamori.policy import Policy
from mamori_operator.state.cluster import ClusterState, PodRecord

logger = logging.getLogger(__name__)

PodKey = tuple[str, str]
AuditStamp = tuple[str, int, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class PodAudit:
    stamp: AuditStamp
    rules_by_policy: Mapping[str, tuple[str, ...]]


def audit_pod(
    body: Mapping[str, Any],
    policies: list[Policy],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
) -> dict[str, tuple[str, ...]]:
    """Policy name → sorted rule IDs the pod violates (advisory findings are not violations)."""
    decision = evaluate(body, policies, namespace=namespace, namespace_labels=namespace_labels)
    if decision is None:
        return {}
    rules: dict[str, set[str]] = {}
    for violation in decision.violations:
        rules.setdefault(violation.policy, set()).add(violation.rule)
    return {policy: tuple(sorted(ids)) for policy, ids in rules.items()}


class Auditor:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._results: dict[PodKey, PodAudit] = {}
        self._lock = threading.Lock()

    def audit(self) -> dict[PodKey, Mapping[str, tuple[str, ...]]]:
        """Bring every pod's verdict up to date; return pod → policy → rules."""
        policies = self.state.policies()
        version = self.state.policies_version
        labels = {ns.name: ns.labels for ns in self.state.all_namespaces()}
        pods = self.state.all_pods()
        fresh: dict[PodKey, PodAudit] = {}
        with self._lock:
            previous = self._results
        for pod in pods:
            namespace_labels = labels.get(pod.namespace, {})
            stamp = (pod.resource_version, version, tuple(sorted(namespace_labels.items())))
            cached = previous.get(pod.key)
            if cached is not None and cached.stamp == stamp:
                fresh[pod.key] = cached
                continue
            fresh[pod.key] = PodAudit(stamp, self._judge(pod, policies, namespace_labels))
        with self._lock:
            self._results = fresh
        return {key: audit.rules_by_policy for key, audit in fresh.items()}

    def _judge(
        self, pod: PodRecord, policies: list[Policy], namespace_labels: Mapping[str, str]
    ) -> Mapping[str, tuple[str, ...]]:
        try:
            return audit_pod(
                pod.body, policies, namespace=pod.namespace, namespace_labels=namespace_labels
            )
        except Exception:  # a rule crashing on one odd pod must not stop the audit
            logger.exception("audit of pod %s/%s failed", pod.namespace, pod.name)
            return {}
