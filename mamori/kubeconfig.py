"""Where the webhook and the operator find the API server: one rule for both.

``--kubeconfig FILE`` when given; else the pod's service account (in a cluster); else
``$KUBECONFIG`` or ``~/.kube/config`` (a developer's machine). ``kubernetes`` is imported only
when a configuration is built, so ``mamori check`` never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import kubernetes.client


def load_client_configuration(
    kubeconfig: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    context: str | None = None,
) -> kubernetes.client.Configuration:
    """A client configuration from ``kubeconfig``, else in-cluster, else the user's kubeconfig.

    ``context`` picks a kubeconfig context (as ``kubectl --context``); naming one means a
    kubeconfig, so the service account is not tried.
    """
    import kubernetes.client
    import kubernetes.config

    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        if context is None:
            try:
                kubernetes.config.load_incluster_config(client_configuration=configuration)
                return configuration
            except kubernetes.config.ConfigException:
                pass
        environ = os.environ if environ is None else environ
        kubeconfig = Path(environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), context=context, client_configuration=configuration
    )
    return configuration
