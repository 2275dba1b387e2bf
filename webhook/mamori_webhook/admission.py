"""Which admission requests mamori judges, and the one path from request body to answer.

Not every request deserves the rule engine. Deleting or connecting to a pod cannot make it less
safe. Status and binding subresources do not change what runs. An UPDATE that only touches
metadata or status (an operator annotating old pods, a controller updating labels) must go
through even if the object predates a policy, or mamori would freeze existing workloads. The
``ephemeralcontainers`` subresource (``kubectl debug``) adds a container, so the whole pod is
judged, the new container included. Everything else is judged in full, dry runs too: a dry run
must predict the real answer.

Before any of that, :mod:`mamori_webhook.reserved_annotations` refuses a request that touches
mamori's own annotations without being the operator: that guard does not depend on policies and
also covers the metadata-only updates that skip the rules.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mamori.engine import evaluate
from mamori.findings import Decision
from mamori.logs import log_context
from mamori.supplychain.lookup import RegistryLookup
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import PolicySet, PolicySource
from mamori_webhook.reserved_annotations import guard
from mamori_webhook.review import (
    AdmissionRequest,
    build_denial,
    build_error_response,
    build_response,
    decode_review,
)

LOG = logging.getLogger("mamori_webhook.admission")
UNJUDGED_OPERATIONS = frozenset({"DELETE", "CONNECT"})
JUDGED_SUBRESOURCES = frozenset({"ephemeralcontainers"})
UNCHANGING_FIELDS = frozenset({"metadata", "status"})


class Skip(enum.StrEnum):
    """Why a request was allowed without running the rules."""

    OPERATION = "operation"
    SUBRESOURCE = "subresource"
    METADATA_ONLY = "metadata-only"
    NOT_A_WORKLOAD = "not-a-workload"


class NotReady(Exception):
    """No policies loaded yet: the API server should apply the webhook's failurePolicy."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one review, and what the metrics and logs need to know about it."""

    response: dict[str, Any]
    decision: Decision | None = None
    skipped: Skip | None = None
    internal_error: bool = False
    refused: bool = False  # denied before the rules, by the reserved-annotations guard

    @property
    def outcome(self) -> str:
        if self.internal_error:
            return "error"
        if self.refused:
            return "denied"
        if self.decision is None:
            return "skipped"
        return "allowed" if self.decision.allowed else "denied"


def skip_reason(request: AdmissionRequest) -> Skip | None:
    """Why ``request`` needs no judgement, or None when the rules must run."""
    if request.operation in UNJUDGED_OPERATIONS:
        return Skip.OPERATION
    if request.sub_resource and request.sub_resource not in JUDGED_SUBRESOURCES:
        return Skip.SUBRESOURCE
    if (
        request.operation == "UPDATE"
        and not request.sub_resource
        and request.object is not None
        and request.old_object is not None
        and only_metadata_changed(request.object, request.old_object)
    ):
        return Skip.METADATA_ONLY
    return None


def only_metadata_changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """True when everything outside ``metadata`` and ``status`` is equal.

    A workload's pod template lives under ``spec``, so a change to template labels still counts
    (it rolls out new pods); only the object's own metadata is ignored.
    """
    keys = (set(new) | set(old)) - UNCHANGING_FIELDS
    return all(new.get(key) == old.get(key) for key in keys)


def resource_of(request: AdmissionRequest) -> Mapping[str, Any]:
    """The object to judge, with apiVersion and kind filled in from the request if missing."""
    return _typed(request, request.object or {})


def old_resource_of(request: AdmissionRequest) -> Mapping[str, Any] | None:
    """The object before an UPDATE, typed like :func:`resource_of`; None when not sent."""
    return None if request.old_object is None else _typed(request, request.old_object)


def _typed(request: AdmissionRequest, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    if obj.get("apiVersion") and obj.get("kind"):
        return obj
    return {**obj, "apiVersion": request.kind.api_version, "kind": request.kind.kind}


class RegistryForReview(Protocol):
    """A registry lookup for one review of ``pod`` (the object judged) in ``namespace``; its
    pull Secrets' names are read from ``pod`` only by a lookup that reads the Secrets."""

    def __call__(self, *, namespace: str | None, pod: Mapping[str, Any]) -> RegistryLookup: ...


class Admission:
    """Decode, judge, encode and count one review; the HTTP layer only moves bytes."""

    def __init__(
        self,
        *,
        policy_source: PolicySource,
        metrics: AdmissionMetrics,
        trusted_annotation_writers: Collection[str] = (),
        on_answer: Callable[[AdmissionRequest, Verdict], None] | None = None,
        registry: RegistryForReview | None = None,
    ) -> None:
        self._source = policy_source
        self._metrics = metrics
        self._trusted_writers = frozenset(trusted_annotation_writers)
        self._on_answer = on_answer  # Kubernetes Events: queued, never waited for
        self._registry = registry  # a lookup per review, while some policy asks registries

    def review(self, body: bytes) -> Verdict:
        """Answer one AdmissionReview body; raises BadReview (HTTP 400) or NotReady (503)."""
        started = time.perf_counter()
        request = decode_review(body)
        policy_set = self._source.current()
        if policy_set is None:
            raise NotReady("policies are not loaded yet")
        try:
            verdict = self._judge(request, policy_set)
        except Exception:
            LOG.exception(
                "internal error judging %s %s/%s (uid %s)",
                request.kind.kind,
                request.namespace,
                request.display_name,
                request.uid,
                extra=log_context(namespace=request.namespace, name=request.display_name),
            )
            message = (
                "mamori could not evaluate this request because of an internal error; "
                f"see the webhook's logs for request uid {request.uid}"
            )
            verdict = Verdict(build_error_response(request.uid, message), internal_error=True)
            self._metrics.errors.labels(reason="internal").inc()
        self._record(request, verdict, time.perf_counter() - started)
        if self._on_answer is not None:
            try:
                self._on_answer(request, verdict)
            except Exception:  # reporting must never change the answer
                LOG.exception("could not queue the Events for request uid %s", request.uid)
        return verdict

    def _judge(self, request: AdmissionRequest, policy_set: PolicySet) -> Verdict:
        refusal = guard(
            operation=request.operation,
            new=resource_of(request) if request.object is not None else None,
            old=old_resource_of(request),
            username=request.username,
            trusted_writers=self._trusted_writers,
            subject=f'{request.kind.kind} "{request.display_name}"',
        )
        if refusal is not None:
            return Verdict(build_denial(request, refusal), refused=True)
        skipped = skip_reason(request)
        if skipped is not None:
            return Verdict(build_response(request, None), skipped=skipped)
        labels = None
        if policy_set.selects_by_label and request.namespace:
            labels = self._source.namespace_labels(request.namespace)
        registry = None
        if policy_set.asks_registry and self._registry is not None:
            registry = self._registry(namespace=request.namespace, pod=resource_of(request))
        decision = evaluate(
            resource_of(request),
            policy_set.policies,
            namespace=request.namespace,
            namespace_labels=labels,
            scans=policy_set.scans,
            registry=registry,
        )
        if registry is not None:
            report = getattr(registry, "report", None)
            if report is not None:
                self._metrics.count_registry(report())
        if decision is None:
            return Verdict(build_response(request, None), skipped=Skip.NOT_A_WORKLOAD)
        return Verdict(build_response(request, decision), decision=decision)

    def _record(self, request: AdmissionRequest, verdict: Verdict, seconds: float) -> None:
        metrics = self._metrics
        metrics.duration.observe(seconds)
        metrics.count_request(
            decision=verdict.outcome, kind=request.kind.kind, operation=request.operation
        )
        if verdict.refused:
            LOG.info(
                "denied %s %s/%s (uid %s, user %s%s): it changes mamori.io/ annotations",
                request.kind.kind,
                request.namespace or "-",
                request.display_name,
                request.uid,
                request.username or "-",
                ", dry run" if request.dry_run else "",
                extra=log_context(namespace=request.namespace, name=request.display_name),
            )
            return
        decision = verdict.decision
        if decision is None:
            return
        for violation in decision.violations:
            metrics.violations.labels(
                rule=violation.rule,
                policy=violation.policy,
                enforcement=violation.enforcement.value,
            ).inc()
        if not decision.allowed:
            rules = sorted({v.rule for v in decision.denials})
            LOG.info(
                "denied %s %s/%s (uid %s, user %s%s): %s",
                request.kind.kind,
                request.namespace or "-",
                request.display_name,
                request.uid,
                request.username or "-",
                ", dry run" if request.dry_run else "",
                ", ".join(rules),
                extra=log_context(
                    policy=",".join(sorted({v.policy for v in decision.denials})),
                    namespace=request.namespace,
                    name=request.display_name,
                    rule=",".join(rules),
                ),
            )
