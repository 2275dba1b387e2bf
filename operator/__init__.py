"""mamori's operator (kopf): NetworkPolicies, image-scan status on pods, policy status.

Importing this package registers the handlers with kopf; ``mamori operator``
(:mod:`mamori.operator.command`) runs them. One handler module per concern: ``policies``
(ClusterSecurityPolicies and Namespaces), ``network_policies`` (managed NetworkPolicies),
``image_scans`` (pods, ImageScans, Trivy VulnerabilityReports), ``lifecycle`` (login, startup,
cleanup). The services they call are in the other modules, wired by ``services``.
"""

from mamori.operator import (
    certificates,
    image_scans,
    lifecycle,
    network_policies,
    policies,
)

__all__ = ["certificates", "image_scans", "lifecycle", "network_policies", "policies"]
