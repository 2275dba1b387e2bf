"""Fixtures for the whole test tree."""

# The real API server (session-scoped): control_plane, kubeconfig, kubectl, kube_api, namespace.
pytest_plugins = ("tests.cluster_fixtures",)
