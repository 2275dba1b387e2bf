"""ClusterSecurityPolicy and Namespace events: keep the model current, fan changes out.

The view is whole before kopf delivers anything: the start-up handler primes
:class:`ClusterState` from the API (:meth:`~mamori_operator.state.relist.ClusterLister.prime`),
so nothing is ever decided on half a picture. Every event handler tells :class:`Handled` what it
saw, so that a re-list by kopf (which reports no deletions) triggers our own re-list from the API.
The event handlers then fan real changes out: a changed policy (or namespace labels) can
change every namespace's NetworkPolicies and every pod's scan settings, so both are
re-converged (the pods by the pod feed's workers, each pod once); each only writes where
something differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from mamori.policy import API_GROUP, API_VERSION, KIND, PLURAL, VERSION
from mamori_operator.api.events import ObjectRef
from mamori_operator.services import Services
from mamori_operator.state.records import namespace_record, policy_record

__all__ = ["namespace_record", "policy_record"]

logger = logging.getLogger(__name__)


@kopf.on.event(API_GROUP, VERSION, PLURAL)
def policy_event(event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    services.handled.observe("policy", str(body.metadata.uid), event.get("type"))
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
            logger.warning(
                "policy %s is invalid (%s); keeping its last valid spec in effect",
                record.name,
                record.error,
            )
            services.events.warning(
                ObjectRef(API_VERSION, KIND, record.name, uid=record.uid),
                reason="InvalidSpec",
                message=record.error,
            )
        else:
            logger.info("policy %s (generation %s) loaded", record.name, record.generation)
    services.reconciler.reconcile_all()
    services.pods.look_again(pod.key for pod in state.all_pods())


@kopf.on.event("", "v1", "namespaces")
def namespace_event(event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    services.handled.observe("namespace", str(body.metadata.uid), event.get("type"))
    name = body.metadata.name
    if event.get("type") == "DELETED":
        services.state.remove_namespace(name)
        services.reconciler.forget_namespace(name)
        services.handled.forget("namespace", name)
        return
    record = namespace_record(dict(body))
    services.state.set_namespace(record)
    version = (str(body.metadata.uid), record.labels, record.terminating)
    if not services.handled.changed("namespace", name, version):
        return
    services.reconciler.reconcile_namespace(name)
    if name in services.reconciler.retries.pending():
        # not done yet: the retry queue owns it, and an event for this version must act again
        services.handled.forget("namespace", name)
    # scan settings follow namespace labels; pods may also have arrived before their namespace
    services.pods.look_again(services.state.pods_in(name))
