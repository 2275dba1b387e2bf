"""mamori: container-security guardrails for Kubernetes.

The core (this package) is pure: it parses policies and workloads and judges pods. The three
front doors — the admission webhook (``mamori_webhook``), the operator (``mamori_operator``) and
the ``mamori check`` CLI — all call :func:`mamori.engine.evaluate`, so a pod gets one verdict.
"""

__version__ = "0.1.0"
