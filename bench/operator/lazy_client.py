"""Run ``mamori operator`` with the kubernetes client's generated classes imported on first use.

What ``--lazy-kubernetes-client`` measures: the operator as it would start if its entry point
called :func:`mamori_operator.memory.import_kubernetes_client_lazily` before importing kopf.
Run: ``python -m bench.operator.lazy_client operator --kubeconfig …`` (arguments go to
``mamori.cli``).
"""

from __future__ import annotations

import sys

from mamori_operator.memory import import_kubernetes_client_lazily


def main() -> int:
    if not import_kubernetes_client_lazily():
        raise SystemExit("bench: kubernetes was already imported; nothing would be lazy")
    from mamori.cli import main as cli_main

    return int(cli_main(sys.argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
