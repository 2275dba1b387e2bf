"""Managed NetworkPolicy events: put back what someone else changed or deleted.

Only NetworkPolicies labelled ``app.kubernetes.io/managed-by: mamori`` are watched (the label
selector is applied by the API server), so unmanaged ones never reach the operator at all. The
start-up prime lists them before kopf watches anything (``state/relist.py``), so the first
reconciliation knows exactly what exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from mamori_operator.api.kube import MANAGED_BY, MANAGED_BY_LABEL
from mamori_operator.services import Services

MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=MANAGED)
def network_policy_event(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    services: Services = memo.services
    services.handled.observe("networkpolicy", str(body.metadata.uid), event.get("type"))
    services.reconciler.on_network_policy(event.get("type"), dict(body))
