"""Certificates at operator start and stop: the first pass before anything else, then the timer."""

from __future__ import annotations

from typing import Any

import kopf

from mamori.kubeconfig import load_client_configuration
from mamori_operator.api.kube import Kube, KubeError
from mamori_operator.certificates.keeper import CertificateKeeper
from mamori_operator.certificates.settings import CertificateSettings
from mamori_operator.config import OperatorConfig
from mamori_operator.metrics import Metrics


@kopf.on.startup()
def start_certificates(memo: kopf.Memo, **_: Any) -> None:
    """First pass before the operator starts its work; then the timer."""
    settings: CertificateSettings | None = memo.get("certificates")
    if settings is None or not settings.manage_certificates:
        return
    config: OperatorConfig = memo.config
    metrics = memo.get("metrics") or Metrics()
    kube = Kube(
        load_client_configuration(config.kubeconfig),
        metrics=metrics,
        pool=2,
        fence=memo.get("fence"),
    )
    keeper = CertificateKeeper(kube, settings=settings, namespace=config.namespace)
    try:
        keeper.reconcile()
    except KubeError as error:
        kube.close()
        if error.status in (401, 403):
            raise kopf.PermanentError(
                f"certificates: {error}. The operator needs get/create/update on Secrets "
                f"{settings.certificate_secret} and {settings.certificate_ca_secret} in "
                f"{config.namespace}, and get/patch on ValidatingWebhookConfiguration "
                f"{settings.certificate_webhook_configuration} (the chart's RBAC grants them)"
            ) from None
        raise kopf.TemporaryError(f"certificates: {error}", delay=5) from None
    memo.certificate_keeper = keeper
    keeper.start()


@kopf.on.cleanup()
def stop_certificates(memo: kopf.Memo, **_: Any) -> None:
    keeper: CertificateKeeper | None = memo.get("certificate_keeper")
    if keeper is not None:
        keeper.stop()
        keeper.kube.close()
