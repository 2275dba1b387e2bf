"""Keep the cluster's PolicyReports equal to what the audit found, writing only what changed.

Level-triggered: each pass builds every report the audit calls for (:mod:`.build`) and compares
it, by :func:`~.build.fingerprint`, with what this operator last wrote or listed; only a
difference is written (one call per report), and a report no longer needed (its namespace is
clean, the policy is gone) is deleted. What is in the cluster is re-listed at start and every
``relist_interval``, so a report someone deleted or edited is put back within one interval.

The operator only ever touches its own reports: it lists by the managed-by label, creates with
POST (a report of the same name that is not ours makes the create fail, and it stays as it is),
and deletes with a uid precondition. Only the leader runs it: the housekeeper's pass calls
:meth:`PolicyReporter.refresh` after the status refresh (started with the operator's services,
after the Lease; writes go through the fenced :class:`Kube`). Missing CRDs switch reports off
until a re-list finds them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mamori_operator.api.kube import MANAGED_BY, MANAGED_BY_LABEL, Kube, KubeError
from mamori_operator.reports.build import (
    CLUSTER_PLURAL,
    GROUP,
    NAMESPACED_PLURAL,
    REPORT_NAME,
    VERSION,
    PolicyProblem,
    ReportLimits,
    ResultKey,
    cluster_report,
    fingerprint,
    namespace_report,
    timestamps_of,
)
from mamori_operator.reports.workloads import WorkloadRef
from mamori_operator.state.cluster import ClusterState
from mamori_operator.status.audit import Auditor, Violations

logger = logging.getLogger(__name__)
CLUSTER = ""  # the key of the ClusterPolicyReport among the namespaces' reports
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


@dataclass
class _Plan:
    """What one pass compares: reports (None: should not exist) and the findings behind them."""

    reports: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    sources: dict[str, Mapping[WorkloadRef, Violations]] = field(default_factory=dict)
    wanted: set[str] = field(default_factory=set)  # whose reports are still ours to keep


@dataclass(frozen=True, slots=True)
class Written:
    """A report of ours as it is in the cluster: enough to compare, not the report itself."""

    uid: str
    fingerprint: str
    timestamps: Mapping[ResultKey, int]


def report_path(namespace: str, name: str | None = None) -> str:
    """The collection (``name`` None) or one report; namespace ``""``: the cluster's."""
    base = f"/apis/{GROUP}/{VERSION}"
    if namespace == CLUSTER:
        path = f"{base}/{CLUSTER_PLURAL}"
    else:
        path = f"{base}/namespaces/{quote(namespace)}/{NAMESPACED_PLURAL}"
    return path if name is None else f"{path}/{quote(name)}"


def plural_of(namespace: str) -> str:
    return CLUSTER_PLURAL if namespace == CLUSTER else NAMESPACED_PLURAL


class PolicyReporter:
    def __init__(
        self,
        *,
        state: ClusterState,
        kube: Kube,
        auditor: Auditor,
        limits: ReportLimits,
        relist_interval: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.kube = kube
        self.auditor = auditor
        self.limits = limits
        self.relist_interval = relist_interval
        self.clock = clock
        self.monotonic = monotonic
        self.available: dict[str, bool] = {NAMESPACED_PLURAL: False, CLUSTER_PLURAL: False}
        self._written: dict[str, Written] | None = None  # None: not listed yet
        self._foreign: set[str] = set()  # namespaces whose "mamori" report is someone else's
        self._sources: dict[str, Mapping[WorkloadRef, Violations]] = {}  # findings now reported
        self._next_relist = 0.0
        self._done: object = None  # the inputs of the last pass that wrote all it had to

    @property
    def left_alone(self) -> frozenset[str]:
        """Namespaces whose report named ``mamori`` belongs to someone else ("": the cluster)."""
        return frozenset(self._foreign)

    # -- one pass ------------------------------------------------------------------------------

    def refresh(self) -> int:
        """Make the reports what the audit says; return how many writes (and deletes) it took."""
        relist_due = self._written is None or self.monotonic() >= self._next_relist
        if relist_due and not self.relist():
            return 0
        self.auditor.audit()
        problems = self._problems()
        live = frozenset(ns.name for ns in self.state.all_namespaces() if not ns.terminating)
        inputs = (self.auditor.revision, problems, live, tuple(self.available.values()))
        if inputs == self._done:
            return 0
        written = self._converge(self._desired(problems, live))
        if written is not None:
            self._done = inputs
            return written
        return 0

    def relist(self) -> bool:
        """Learn which of our reports exist (and what they say); False when the API failed."""
        found: dict[str, Written] = {}
        for plural in (NAMESPACED_PLURAL, CLUSTER_PLURAL):
            path = f"/apis/{GROUP}/{VERSION}/{plural}"
            try:
                items = list(self.kube.list_all(path, resource=plural, label_selector=SELECTOR))
            except KubeError as error:
                if error.status != 404:
                    logger.warning("could not list %s: %s", plural, error)
                    return False
                if self.available[plural] or self._written is None:
                    logger.info("%s.%s is not served: no %s until it is", plural, GROUP, plural)
                self.available[plural] = False
                continue
            self.available[plural] = True
            for item in items:
                metadata = item.get("metadata") or {}
                if metadata.get("name") != REPORT_NAME:
                    continue
                namespace = str(metadata.get("namespace") or CLUSTER)
                found[namespace] = Written(
                    uid=str(metadata.get("uid", "")),
                    fingerprint=fingerprint(item),
                    timestamps=timestamps_of(item),
                )
        self._written = found
        self._foreign.clear()
        self._sources.clear()
        self._done = None
        self._next_relist = self.monotonic() + self.relist_interval
        return True

    def _problems(self) -> tuple[PolicyProblem, ...]:
        return tuple(
            PolicyProblem(
                name=record.name,
                uid=record.uid,
                message=record.error,
                in_effect=record.valid_generation if record.policy is not None else None,
            )
            for record in self.state.all_policy_records()
            if record.error
        )

    def _desired(self, problems: tuple[PolicyProblem, ...], live: frozenset[str]) -> _Plan:
        """The reports to compare with the cluster: those of namespaces whose findings changed
        since their report was last made equal (or that were never compared), and the cluster's.
        Namespaces being deleted are left out (their reports go with them)."""
        written = self._written or {}
        now = int(self.clock())
        plan = _Plan()
        if self.available[NAMESPACED_PLURAL]:
            findings = self.auditor.workloads()
            plan.wanted.update(live)
            for namespace in live & (set(findings) | set(written)):
                source = findings.get(namespace, {})
                if namespace in self._sources and self._sources[namespace] == source:
                    continue  # the same findings as when its report was last made equal
                known = written.get(namespace)
                plan.sources[namespace] = source
                plan.reports[namespace] = namespace_report(
                    namespace,
                    source,
                    limits=self.limits,
                    timestamps=known.timestamps if known else {},
                    now=now,
                )
        if self.available[CLUSTER_PLURAL]:
            known = written.get(CLUSTER)
            plan.wanted.add(CLUSTER)
            plan.reports[CLUSTER] = cluster_report(
                problems,
                limits=self.limits,
                timestamps=known.timestamps if known else {},
                now=now,
            )
        return plan

    def _converge(self, plan: _Plan) -> int | None:
        """Write what differs; the number of calls made, or None when one failed."""
        assert self._written is not None
        calls, failed = 0, False
        for namespace in set(self._written) - plan.wanted:
            del self._written[namespace]  # its namespace is gone or going: nothing to do
        for namespace in set(self._sources) - plan.wanted:
            del self._sources[namespace]
        for namespace, body in sorted(plan.reports.items()):
            known = self._written.get(namespace)
            try:
                calls += self._make_equal(namespace, body, known)
            except KubeError as error:
                failed = True
                self._count("failed")
                self._sources.pop(namespace, None)
                logger.warning("could not write the PolicyReport of %s: %s", namespace, error)
                if error.status == 404:  # deleted behind our back (or its namespace is gone)
                    self._written.pop(namespace, None)
                continue
            if namespace in plan.sources:
                self._sources[namespace] = plan.sources[namespace]
        return None if failed else calls

    def _make_equal(
        self, namespace: str, body: dict[str, Any] | None, known: Written | None
    ) -> int:
        """One report made what it should be; the number of API calls it took."""
        if body is None:
            if known is None:
                return 0
            self._delete(namespace, known)
            self._count("written")
            return 1
        if known is not None and known.fingerprint == fingerprint(body):
            self._count("unchanged")
            return 0
        if namespace in self._foreign:
            return 0
        self._write(namespace, body, known)
        return 1

    def _write(self, namespace: str, body: dict[str, Any], known: Written | None) -> None:
        plural = plural_of(namespace)
        if known is None:
            try:
                result = self.kube.create(report_path(namespace), body, resource=plural)
            except KubeError as error:
                if error.status != 409:
                    raise
                logger.warning(
                    "a %s named %s exists in %s and is not mamori's: leaving it alone",
                    plural,
                    REPORT_NAME,
                    namespace or "the cluster",
                )
                self._foreign.add(namespace)
                return
        else:
            result = self.kube.apply(
                report_path(namespace, REPORT_NAME), body, resource=plural, force=True
            )
        self._count("written")
        assert self._written is not None
        self._written[namespace] = Written(
            uid=str((result.get("metadata") or {}).get("uid", "")),
            fingerprint=fingerprint(body),
            timestamps=timestamps_of(body),
        )

    def _count(self, outcome: str) -> None:
        self.kube.metrics.policy_report_writes.labels(outcome=outcome).inc()

    def _delete(self, namespace: str, known: Written) -> None:
        preconditions = {"preconditions": {"uid": known.uid}} if known.uid else None
        try:
            self.kube.request(
                "DELETE",
                report_path(namespace, REPORT_NAME),
                resource=plural_of(namespace),
                body=preconditions,
            )
        except KubeError as error:
            if error.status not in (404, 409):  # gone already, or no longer the one we wrote
                raise
        assert self._written is not None
        self._written.pop(namespace, None)
