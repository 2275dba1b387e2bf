"""Operator start and stop: log in, tune kopf, build the services, prime state; close on exit.

The state itself is primed from the API by the start-up handler, which kopf runs to completion
before it starts a single watch (see :mod:`mamori_operator.state.relist`): the first
reconciliation never mistakes "not listed yet" for "gone".
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
import kubernetes.client

from mamori.kubeconfig import load_client_configuration
from mamori.policy import API_GROUP, PLURAL, VERSION
from mamori_operator.api.kube import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    KubeError,
    cluster_object_path,
)
from mamori_operator.config import OperatorConfig
from mamori_operator.metrics import Metrics
from mamori_operator.scanning.scanner import IMAGESCAN_PLURAL
from mamori_operator.services import Services

logger = logging.getLogger(__name__)
NETWORK_POLICY_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Use the same credentials as our own client: --kubeconfig, in-cluster, or $KUBECONFIG."""
    config: OperatorConfig = memo.config
    return connection_info(load_client_configuration(config.kubeconfig))


def connection_info(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    header = configuration.api_key.get("BearerToken") or configuration.api_key.get("authorization")
    token = _bearer_token(str(header)) if header else None
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
        scheme="Bearer" if token else None,
        token=token,
    )


def _bearer_token(header: str) -> str:
    """The token alone: the in-cluster loader writes "bearer <token>" (lower case), a kubeconfig
    "Bearer <token>"; sending either prefix again would be refused as Unauthorized."""
    scheme, _, rest = header.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else header.strip()


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo.config
    settings.peering.standalone = True  # one active replica is ensured by our Lease instead
    settings.posting.enabled = False  # we post our own, fewer and clearer, Events
    settings.execution.max_workers = config.workers
    settings.watching.label_selectors["networking.k8s.io", "networkpolicies"] = (
        NETWORK_POLICY_SELECTOR
    )
    settings.watching.chunk_size = 500  # list big clusters page by page: bounded memory peak
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = int(config.watch_timeout)
    settings.watching.client_timeout = config.watch_timeout + 10  # a silent stream is dropped
    metrics = memo.get("metrics") or Metrics()
    services = Services.build(config, metrics=metrics, fence=memo.get("fence"))
    try:
        check_crds(services)
        services.prime()  # the whole view before kopf starts a watch (state/relist.py)
    except KubeError as error:
        services.close()
        if error.status == 404:
            raise kopf.PermanentError(
                "mamori's CRDs are not installed; apply charts/mamori/crds/ first"
            ) from None
        raise kopf.TemporaryError(f"cannot read the cluster: {error}", delay=5) from None
    memo.services = services
    services.start()
    liveness = memo.get("liveness")
    if liveness is not None:
        liveness.leading(lambda: services.housekeeper.passes)
    logger.info("operator started (%s)", config.replica_identity())


def check_crds(services: Services) -> None:
    """Fail early, with a message that says what to do, when our CRDs are missing."""
    for plural in (PLURAL, IMAGESCAN_PLURAL):
        services.kube.request(
            "GET",
            cluster_object_path(API_GROUP, VERSION, plural),
            resource=plural,
            query=[("limit", "1")],
        )


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    services: Services | None = memo.get("services")
    if services is not None:
        services.close()
