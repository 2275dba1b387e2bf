"""mamori's operator (kopf): NetworkPolicies, image-scan status on pods, policy status.

One folder per question (docs/architecture.md draws them):

- ``handlers/``: which events the operator reacts to (importing it registers them with kopf).
- ``network/``: what NetworkPolicies a namespace should have, and making it so.
- ``scanning/``: what the scanners say about a pod's images (``scanning/providers`` registers
  the sources), and the annotations and ImageScans that carry it.
- ``certificates/``: the webhook's serving certificate and CA, and the caBundle.
- ``registry/``: how the registries the cluster pulls from are set up (``mamori check --ecr``).
- ``status/``: what ``kubectl get clustersecuritypolicies`` shows, and the background audit.
- ``state/``: what the operator knows about the cluster, kept current by watch events.
- ``api/``: talking to the API server (client, Events, the leader Lease).

The modules at this level run the process: ``command`` (flags → :class:`config.OperatorConfig`),
``runtime`` (leadership, then kopf), ``services`` (the objects the handlers use, wired once),
``housekeeper`` (the one background thread), ``health`` and ``metrics``. Importing this package
imports nothing heavy; ``runtime`` imports ``handlers``.
"""
