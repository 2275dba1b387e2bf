"""ClusterSecurityPolicy ``status``: what an admin reads with ``kubectl get csp`` and ``-o yaml``.

:func:`build_status` is pure: from what the operator knows it computes the whole status, keeping
each condition's ``lastTransitionTime`` while its status stays the same, so an unchanged cluster
yields an identical status and :class:`StatusWriter` writes nothing.

The status says what is true: ``NetworkPoliciesReady`` compares, namespace by namespace, the
NetworkPolicy each selected namespace should have with the object in the cluster (the view a
re-list keeps honest), and ``networkPolicies.ready`` ("in place/desired") is the column
``kubectl get csp`` shows. While an edit left the spec invalid, the last valid spec stays in
effect (see ``PolicyRecord``) and ``Ready`` is False with the parser's error, which names the
field.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mamori.logs import log_context
from mamori.policy import API_GROUP, API_VERSION, KIND, PLURAL
from mamori_operator.api.kube import Kube, KubeError, cluster_object_path
from mamori_operator.metrics import POLICY_STATUS
from mamori_operator.network.reconciler import (
    NetworkPolicyCount,
    NetworkPolicyReconciler,
    policy_label,
)
from mamori_operator.scanning.model import STATUS_ANNOTATION, ScanStatus
from mamori_operator.scanning.scanner import ProviderHealth, ProviderProblem
from mamori_operator.state.cluster import ClusterState, NamespaceRecord, PodRecord, PolicyRecord
from mamori_operator.status.audit import Auditor

logger = logging.getLogger(__name__)
PodKey = tuple[str, str]
STATUS_KEYS = (
    "observedGeneration",
    "conditions",
    "namespaces",
    "networkPolicies",
    "pods",
    "violations",
)


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    """Everything :func:`build_status` needs about one policy, gathered by the caller."""

    record: PolicyRecord
    namespaces: Sequence[NamespaceRecord]
    managed_network_policies: int
    network_errors: Mapping[str, str]
    pods: Sequence[PodRecord]
    audits: Mapping[PodKey, Mapping[str, tuple[str, ...]]]
    provider_problems: Sequence[ProviderProblem]
    network_policies: NetworkPolicyCount = field(default_factory=NetworkPolicyCount)


def build_status(facts: PolicyFacts, *, offenders: int, now: str) -> dict[str, Any]:
    record = facts.record
    policy = record.policy
    previous = _conditions_by_type(record.status)
    invalid = _invalid_message(record)
    if policy is None:
        unknown = ("Unknown", "InvalidSpec", "the policy spec is invalid")
        conditions = [
            ("Ready", "False", "InvalidSpec", invalid or "invalid spec"),
            ("NetworkPoliciesReady", *unknown),
            ("ScanProviderReady", *unknown),
        ]
        return {
            "observedGeneration": record.generation,
            "conditions": _conditions(conditions, previous, generation=record.generation, now=now),
        }
    selected = [
        ns for ns in facts.namespaces if not ns.terminating and policy.selects(ns.name, ns.labels)
    ]
    exempt = [ns for ns in facts.namespaces if policy.is_exempt(ns.name)]
    selected_names = {ns.name for ns in selected}
    pods = sorted((p for p in facts.pods if p.namespace in selected_names), key=lambda p: p.key)
    has_network = policy.network_policy is not None
    network = _network_condition(facts, has_section=has_network)
    scan = _scan_condition(facts, has_section=policy.image_scan is not None)
    if invalid is not None:
        ready = ("Ready", "False", "InvalidSpec", invalid)
    elif network[1] != "True":
        ready = ("Ready", "False", "NetworkPoliciesNotReady", network[3])
    elif scan[1] != "True":
        ready = ("Ready", "False", "ScanProviderNotReady", scan[3])
    else:
        ready = ("Ready", "True", "Active", f"enforcing in {len(selected)} namespaces")
    counts = facts.network_policies
    network_policies = {
        "managed": facts.managed_network_policies,
        "desired": counts.desired,
        "inPlace": counts.in_place,
        "ready": f"{counts.in_place}/{counts.desired}",
    }
    return {
        "observedGeneration": record.generation,
        "conditions": _conditions(
            [ready, network, scan], previous, generation=record.generation, now=now
        ),
        "namespaces": {"selected": len(selected), "exempt": len(exempt)},
        "networkPolicies": network_policies,
        "pods": _scan_counts(pods, scanning=policy.image_scan is not None),
        "violations": _violations(pods, facts.audits, policy=record.name, limit=offenders),
    }


def _invalid_message(record: PolicyRecord) -> str | None:
    """The Ready message while the current spec is invalid; None when it is valid."""
    if record.error is None:
        return None
    if record.policy is None:
        return record.error
    return (
        f"the spec is invalid: {record.error}; generation {record.valid_generation} "
        "(the last valid spec) stays in effect until it is fixed"
    )


def _network_condition(facts: PolicyFacts, *, has_section: bool) -> tuple[str, str, str, str]:
    name = "NetworkPoliciesReady"
    if not has_section:
        return (name, "True", "NotConfigured", "the policy has no networkPolicy section")
    counts = facts.network_policies
    if facts.network_errors:
        failures = "; ".join(f"{ns}: {msg}" for ns, msg in sorted(facts.network_errors.items())[:3])
        more = len(facts.network_errors) - 3
        suffix = f" (and {more} more namespaces)" if more > 0 else ""
        return (name, "False", "ApplyFailed", failures + suffix)
    if counts.in_place < counts.desired:
        missing = counts.desired - counts.in_place
        return (
            name,
            "False",
            "Missing",
            f"{counts.in_place} of {counts.desired} NetworkPolicies in place "
            f"({missing} missing or changed; being restored)",
        )
    return (
        name,
        "True",
        "Applied",
        f"{counts.in_place} of {counts.desired} NetworkPolicies in place",
    )


def _scan_condition(facts: PolicyFacts, *, has_section: bool) -> tuple[str, str, str, str]:
    name = "ScanProviderReady"
    if not has_section:
        return (name, "True", "NotConfigured", "the policy has no imageScan section")
    if facts.provider_problems:
        first = facts.provider_problems[0]
        message = "; ".join(f"{p.provider}: {p.message}" for p in facts.provider_problems)
        return (name, "False", first.reason, message)
    return (name, "True", "Available", "every scan provider answers")


def _scan_counts(pods: Sequence[PodRecord], *, scanning: bool) -> dict[str, int]:
    counts = {"total": len(pods), **{status.value: 0 for status in ScanStatus}}
    if scanning:
        for pod in pods:
            status = pod.annotations.get(STATUS_ANNOTATION, ScanStatus.PENDING.value)
            if status in counts and status != "total":
                counts[status] += 1
    return counts


def _violations(
    pods: Sequence[PodRecord],
    audits: Mapping[PodKey, Mapping[str, tuple[str, ...]]],
    *,
    policy: str,
    limit: int,
) -> dict[str, Any]:
    by_rule: dict[str, int] = {}
    offenders: list[dict[str, Any]] = []
    count = 0
    for pod in pods:
        rules = audits.get(pod.key, {}).get(policy, ())
        if not rules:
            continue
        count += 1
        for rule in rules:
            by_rule[rule] = by_rule.get(rule, 0) + 1
        if len(offenders) < limit:
            offenders.append({"namespace": pod.namespace, "name": pod.name, "rules": list(rules)})
    # Empty maps and lists are left out: server-side apply would store an empty map as null.
    violations: dict[str, Any] = {"pods": count}
    if by_rule:
        violations["byRule"] = dict(sorted(by_rule.items()))
    if offenders:
        violations["offenders"] = offenders
    return violations


def _conditions_by_type(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    return {
        str(c.get("type")): c for c in conditions or [] if isinstance(c, Mapping) and c.get("type")
    }


def _conditions(
    items: Sequence[tuple[str, str, str, str]],
    previous: Mapping[str, Mapping[str, Any]],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    conditions = []
    for kind, status, reason, message in items:
        before = previous.get(kind, {})
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message[:1024],
                "lastTransitionTime": since or now,
                "observedGeneration": generation,
            }
        )
    return conditions


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusWriter:
    """Recompute every policy's status; write only the ones that changed."""

    def __init__(
        self,
        *,
        state: ClusterState,
        kube: Kube,
        reconciler: NetworkPolicyReconciler,
        auditor: Auditor,
        health: ProviderHealth,
        offenders: int,
    ) -> None:
        self.state = state
        self.kube = kube
        self.reconciler = reconciler
        self.auditor = auditor
        self.health = health
        self.offenders = offenders

    def refresh(self) -> int:
        """One pass over all policies; returns how many statuses were written."""
        records = self.state.all_policy_records()
        if not records:
            return 0
        audits = self.auditor.audit()
        namespaces = self.state.all_namespaces()
        pods = self.state.all_pods()
        network_counts = self.reconciler.counts()
        written = 0
        for record in records:
            scan = record.policy.image_scan if record.policy else None
            facts = PolicyFacts(
                record=record,
                namespaces=namespaces,
                managed_network_policies=self.state.count_network_policies(
                    policy_label(record.name)
                ),
                network_errors=self.reconciler.errors_for(record.name),
                pods=pods,
                audits=audits,
                provider_problems=self.health.problems(
                    [str(p) for p in scan.providers] if scan is not None else []
                ),
                network_policies=network_counts.get(record.name, NetworkPolicyCount()),
            )
            status = build_status(facts, offenders=self.offenders, now=utc_now())
            if _same(status, record.status):
                continue
            if self._write(record, status):
                written += 1
        return written

    def _write(self, record: PolicyRecord, status: Mapping[str, Any]) -> bool:
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": record.name},
            "status": dict(status),
        }
        path = cluster_object_path(API_GROUP, "v1alpha1", PLURAL, record.name) + "/status"
        try:
            result = self.kube.apply(path, body, resource=f"{PLURAL}/status", force=True)
        except KubeError as error:
            if error.status != 404:  # the policy is gone: nothing failed
                self.kube.metrics.count_reconcile(POLICY_STATUS, failed=True)
                logger.warning(
                    "could not write status of policy %s: %s",
                    record.name,
                    error,
                    extra=log_context(policy=record.name),
                )
            return False
        self.kube.metrics.count_reconcile(POLICY_STATUS, failed=False)
        self.state.set_policy_status(record.name, result.get("status") or {})
        return True


def _same(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    old = old or {}
    return all(old.get(key) == new.get(key) for key in STATUS_KEYS)
