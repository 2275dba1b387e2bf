"""Background audit: judge running pods with the same engine as the admission webhook.

A pod admitted before a policy existed (or while it was in Audit or Warn mode) may break it; the
audit finds those. Results are cached per pod and recomputed only when what the verdict rests on
changes (:func:`judged_inputs`: the pod's stored body, its images, its owner; the policies; the
namespace labels), so a status refresh over thousands of pods stays cheap. Not on the pod's
resourceVersion: the operator's own scan-status patch moves it, and so does the watch's echo of
that patch, and neither changes anything the rules read. A pod under
a policy that judges scans or signatures is judged with evidence (:mod:`evidence`: the
ImageScans the operator holds, registries asked for the digests that run), and its verdict also
expires with that evidence; the pass runs in the housekeeper's thread, never in a handler.

What is kept is small on purpose: the pods of one workload are usually identical, so their
verdicts are interned (one shared tuple of violations, one shared workload reference, for all
replicas), and the findings are also offered per workload (:meth:`Auditor.workloads`), which is
what the PolicyReports list.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mamori.engine import evaluate
from mamori.findings import Violation
from mamori.policy import Policy
from mamori.scans import ScanLookup
from mamori.supplychain.lookup import RegistryLookup
from mamori_operator.reports.workloads import WorkloadRef, workload_of
from mamori_operator.scanning.model import ImageRef
from mamori_operator.state.cluster import ClusterState, PodRecord
from mamori_operator.status.evidence import (
    AuditEvidence,
    AuditPass,
    EvidenceStamp,
    PodEvidence,
)
from mamori_operator.status.running_images import RunningDigests

logger = logging.getLogger(__name__)

PodKey = tuple[str, str]
LabelsStamp = tuple[tuple[str, str], ...]
AuditStamp = tuple[bytes, tuple[ImageRef, ...], str, str, str, int, LabelsStamp]
"""What a verdict was judged on (:func:`judged_inputs`), the evidence apart."""
Violations = tuple[Violation, ...]
WorkloadFindings = Mapping[str, Mapping[WorkloadRef, Violations]]
"""namespace → workload → its violations (the union over its pods, in a stable order)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The violations of a pod, and the same as policy → rule IDs (what the status counts)."""

    violations: Violations
    rules_by_policy: Mapping[str, tuple[str, ...]]


NO_VERDICT = Verdict((), {})


@dataclass(frozen=True, slots=True)
class PodAudit:
    stamp: AuditStamp
    namespace: str
    workload: WorkloadRef
    verdict: Verdict
    evidence: EvidenceStamp | None = None
    """Set when the verdict rests on scans or registry answers (it then expires with them)."""


def judge_pod(
    body: Mapping[str, Any],
    policies: list[Policy],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
    scans: ScanLookup | None = None,
    registry: RegistryLookup | None = None,
) -> Violations:
    """Every violation of the pod (advisory findings are hints, not violations)."""
    decision = evaluate(
        body,
        policies,
        namespace=namespace,
        namespace_labels=namespace_labels,
        scans=scans,
        registry=registry,
    )
    return () if decision is None else decision.violations


def audit_pod(
    body: Mapping[str, Any],
    policies: list[Policy],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
) -> dict[str, tuple[str, ...]]:
    """Policy name → sorted rule IDs the pod violates (advisory findings are not violations)."""
    violations = judge_pod(body, policies, namespace=namespace, namespace_labels=namespace_labels)
    return dict(_rules_by_policy(violations))


def _rules_by_policy(violations: Violations) -> Mapping[str, tuple[str, ...]]:
    rules: dict[str, set[str]] = {}
    for violation in violations:
        rules.setdefault(violation.policy, set()).add(violation.rule)
    return {policy: tuple(sorted(ids)) for policy, ids in rules.items()}


def judged_inputs(pod: PodRecord, policies_version: int, labels: LabelsStamp) -> AuditStamp:
    """Everything a pod's verdict and workload rest on, the evidence apart.

    The stored body (compressed bytes, compared without decoding) is what the engine reads:
    spec, labels and annotations (AppArmor and seccomp ones are judged), never the operator's
    own scan-status annotations, which :func:`~mamori_operator.state.pods.pod_record` keeps
    out of it. The images carry the digests the kubelet reports (what evidence is asked about);
    owner and uid make the workload; the policies' version and the namespace's labels decide
    which policies select the pod and what they demand.
    """
    return (
        pod.encoded_body,
        pod.images,
        pod.owner_kind,
        pod.owner_name,
        pod.uid,
        policies_version,
        labels,
    )


class _Interner:
    """One object per distinct value within a pass: replicas share their verdict and workload."""

    def __init__(self) -> None:
        self.verdicts: dict[Violations, Verdict] = {}
        self.violations: dict[Violation, Violation] = {}
        self.workloads: dict[tuple[str, WorkloadRef], WorkloadRef] = {}

    def verdict(self, violations: Violations) -> Verdict:
        if not violations:
            return NO_VERDICT
        shared = tuple(self.violations.setdefault(v, v) for v in violations)
        known = self.verdicts.get(shared)
        if known is None:
            known = self.verdicts[shared] = Verdict(shared, _rules_by_policy(shared))
        return known

    def keep(self, audit: PodAudit) -> PodAudit:
        """Register a cached entry's shared objects, so new entries reuse them."""
        self.workloads.setdefault((audit.namespace, audit.workload), audit.workload)
        if audit.verdict.violations:
            self.verdicts.setdefault(audit.verdict.violations, audit.verdict)
            for violation in audit.verdict.violations:
                self.violations.setdefault(violation, violation)
        return audit

    def workload(self, namespace: str, workload: WorkloadRef) -> WorkloadRef:
        return self.workloads.setdefault((namespace, workload), workload)


class Auditor:
    def __init__(self, state: ClusterState, *, evidence: AuditEvidence | None = None) -> None:
        self.state = state
        self.evidence = evidence
        """Where scans and registry answers come from; None: rules that need them find nothing."""
        self._results: dict[PodKey, PodAudit] = {}
        self._workloads: WorkloadFindings = {}
        self.revision = 0
        """Bumped whenever some pod's verdict or workload changed (a pod came, went or moved)."""
        self._lock = threading.Lock()
        self._pass = threading.Lock()  # the status writer and the reporter may audit at once

    def audit(self) -> dict[PodKey, Mapping[str, tuple[str, ...]]]:
        """Bring every pod's verdict up to date; return pod → policy → rules."""
        with self._pass:
            fresh = self._audit()
        return {key: audit.verdict.rules_by_policy for key, audit in fresh.items()}

    def workloads(self) -> WorkloadFindings:
        """namespace → workload → violations, as of the last :meth:`audit` (workloads without
        violations are left out)."""
        with self._lock:
            return self._workloads

    def _audit(self) -> dict[PodKey, PodAudit]:
        policies = self.state.policies()
        version = self.state.policies_version
        labels = {ns.name: ns.labels for ns in self.state.all_namespaces()}
        label_stamps = {name: tuple(sorted(found.items())) for name, found in labels.items()}
        pods = self.state.all_pods()
        fresh: dict[PodKey, PodAudit] = {}
        interner = _Interner()
        with self._lock:
            previous = self._results
        changed = False
        deferred = 0
        evidence = self.evidence.begin_pass(policies) if self.evidence is not None else None
        for pod in pods:
            namespace_labels = labels.get(pod.namespace, {})
            stamp = judged_inputs(pod, version, label_stamps.get(pod.namespace, ()))
            cached = previous.get(pod.key)
            if cached is not None and _still_holds(cached, stamp, evidence):
                fresh[pod.key] = interner.keep(cached)
                continue
            pod_evidence = None
            if evidence is not None and evidence.needs(pod.namespace, namespace_labels):
                pod_evidence = evidence.for_pod(RunningDigests.of(pod.images), pod)
            violations = self._judge(pod, policies, namespace_labels, pod_evidence)
            if pod_evidence is not None and pod_evidence.deferred:
                # the pass ran out of time for registries: the last verdict stands until then
                deferred += 1
                if cached is not None:
                    fresh[pod.key] = interner.keep(cached)
                continue
            audit = PodAudit(
                stamp=stamp,
                namespace=pod.namespace,
                workload=interner.workload(pod.namespace, workload_of(pod)),
                verdict=interner.verdict(violations),
                evidence=pod_evidence.stamp() if pod_evidence is not None else None,
            )
            fresh[pod.key] = audit
            changed = changed or cached is None or _differs(cached, audit)
        changed = changed or len(fresh) != len(previous)  # a pod went (every key is a pod's)
        if deferred:
            logger.info("%d pods wait for registry answers until the next audit pass", deferred)
        workloads = _by_workload(fresh.values()) if changed else None
        with self._lock:
            self._results = fresh
            if workloads is not None:
                self._workloads = workloads
                self.revision += 1
        return fresh

    def _judge(
        self,
        pod: PodRecord,
        policies: list[Policy],
        namespace_labels: Mapping[str, str],
        evidence: PodEvidence | None,
    ) -> Violations:
        try:
            return judge_pod(
                pod.body,
                policies,
                namespace=pod.namespace,
                namespace_labels=namespace_labels,
                scans=evidence,
                registry=evidence,
            )
        except Exception:  # a rule crashing on one odd pod must not stop the audit
            logger.exception("audit of pod %s/%s failed", pod.namespace, pod.name)
            return ()


def _still_holds(cached: PodAudit, stamp: AuditStamp, evidence: AuditPass | None) -> bool:
    """True when nothing the cached verdict rests on changed: the pod, the policies, the
    namespace labels and, for a verdict judged with evidence, that evidence."""
    if cached.stamp != stamp:
        return False
    return cached.evidence is None or (evidence is not None and evidence.holds(cached.evidence))


def _differs(old: PodAudit, new: PodAudit) -> bool:
    return old.workload != new.workload or old.verdict.violations != new.verdict.violations


def _by_workload(audits: Iterable[PodAudit]) -> WorkloadFindings:
    """Group pod verdicts by workload: the union of its pods' violations, each once."""
    found: dict[str, dict[WorkloadRef, set[Violation]]] = {}
    for audit in audits:
        if audit.verdict.violations:
            found.setdefault(audit.namespace, {}).setdefault(audit.workload, set()).update(
                audit.verdict.violations
            )
    return {
        namespace: {
            workload: tuple(sorted(violations, key=Violation.sort_key))
            for workload, violations in workloads.items()
        }
        for namespace, workloads in found.items()
    }
