"""ClusterSecurityPolicy and Namespace events: keep the model current, fan changes out.

Index handlers store every policy and namespace in :class:`ClusterState` as kopf lists and
watches them; kopf runs no other handler until those lists are complete, so nothing is ever
decided on half a picture. The event handlers then fan real changes out: a changed policy (or
namespace labels) can change every namespace's NetworkPolicies and every pod's scan settings,
so both are re-converged; each only writes where something differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from mamori.operator.events import ObjectRef
from mamori.operator.services import Services
from mamori.operator.state import NamespaceRecord, PolicyRecord
from mamori.policy import API_GROUP, API_VERSION, KIND, PLURAL, PolicyError, parse_policy

logger = logging.getLogger(__name__)


def policy_record(body: Mapping[str, Any]) -> PolicyRecord:
    metadata = body.get("metadata") or {}
    try:
        policy, error = parse_policy(body), None
    except PolicyError as problem:
        policy, error = None, str(problem)
    generation = metadata.get("generation")
    return PolicyRecord(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        generation=generation if isinstance(generation, int) else 0,
        policy=policy,
        error=error,
        status=dict(body.get("status") or {}),
    )


def namespace_record(body: Mapping[str, Any]) -> NamespaceRecord:
    metadata = body.get("metadata") or {}
    phase = (body.get("status") or {}).get("phase")
    return NamespaceRecord(
        name=str(metadata.get("name", "")),
        labels=dict(metadata.get("labels") or {}),
        terminating=phase == "Terminating" or bool(metadata.get("deletionTimestamp")),
    )


@kopf.index(API_GROUP, "v1alpha1", PLURAL)
def policy_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, int]:
    record = policy_record(dict(body))
    memo.services.state.set_policy(record)
    return {record.name: record.generation}


@kopf.index("", "v1", "namespaces")
def namespace_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, bool]:
    record = namespace_record(dict(body))
    memo.services.state.set_namespace(record)
    return {record.name: record.terminating}


@kopf.on.event(API_GROUP, "v1alpha1", PLURAL)
def policy_event(event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    services.handled.synced.set()
    state, name = services.state, body.metadata.name
    if event.get("type") == "DELETED":
        state.remove_policy(name)
        services.handled.forget("policy", name)
        logger.info("policy %s deleted", name)
    else:
        record = policy_record(dict(body))
        state.set_policy(record)
        if not services.handled.changed("policy", name, (record.uid, record.policy, record.error)):
            return  # only the status moved (often our own write)
        if record.error:
            logger.warning("policy %s is invalid: %s", record.name, record.error)
            services.events.warning(
                ObjectRef(API_VERSION, KIND, record.name, uid=record.uid),
                reason="InvalidSpec",
                message=record.error,
            )
        else:
            logger.info("policy %s (generation %s) loaded", record.name, record.generation)
    services.reconciler.reconcile_all()
    services.scanner.refresh_pods(pod.key for pod in state.all_pods())


@kopf.on.event("", "v1", "namespaces")
def namespace_event(event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    services.handled.synced.set()
    name = body.metadata.name
    if event.get("type") == "DELETED":
        services.state.remove_namespace(name)
        services.reconciler.forget_namespace(name)
        services.handled.forget("namespace", name)
        return
    record = namespace_record(dict(body))
    services.state.set_namespace(record)
    if not services.handled.changed("namespace", name, (record.labels, record.terminating)):
        return
    services.reconciler.reconcile_namespace(name)
    # scan settings follow namespace labels; pods may also have arrived before their namespace
    services.scanner.refresh_pods(
        pod.key for pod in services.state.all_pods() if pod.namespace == name
    )
