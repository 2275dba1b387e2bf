"""The kopf handlers, one module per kind of event; importing this package registers them all.

``lifecycle`` (login, startup, cleanup), ``certificates`` (the first certificate pass and its
timer), ``policies`` (ClusterSecurityPolicies and Namespaces), ``network_policies`` (managed
NetworkPolicies), ``scans`` (pods, ImageScans, Trivy VulnerabilityReports). They decide what to
do; the work is done by the services of the other folders, wired by ``services``.
"""

from mamori_operator.handlers import (
    certificates,
    lifecycle,
    network_policies,
    policies,
    scans,
)

__all__ = ["certificates", "lifecycle", "network_policies", "policies", "scans"]
