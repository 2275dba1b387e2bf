"""Fixtures shared by the integration tests in this directory.

``operator`` runs one in-process operator per test module; a module that needs other settings
overrides ``operator_overrides`` (fields of OperatorConfig) instead of repeating the fixture.
``made`` collects the policies and namespaces a test creates and deletes them afterwards.

The fault-test fixtures (``private_control_plane`` and friends) are in tests/cluster_fixtures.py,
so that every directory can use them; the faults themselves are in faults.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mamori_operator.services import Services
from tests.integration.operator_support import Cluster, operator_config, running_operator, unique


@pytest.fixture(scope="module")
def cluster(kubeconfig: Path) -> Cluster:
    """API clients for the test control plane, with mamori's CRDs installed and serving."""
    cluster = Cluster.connect(Path(kubeconfig))
    cluster.install_crds()
    return cluster


@pytest.fixture(scope="module")
def operator_overrides() -> dict[str, Any]:
    """OperatorConfig fields a test module changes from operator_config()'s fast defaults."""
    return {}


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, kubeconfig: Path, operator_overrides: dict[str, Any]
) -> Iterator[Services]:
    with running_operator(operator_config(Path(kubeconfig), **operator_overrides)) as services:
        yield services


@pytest.fixture
def made(cluster: Cluster) -> Iterator[dict[str, list[str]]]:
    """What the test created, by kind ("policies", "namespaces"), deleted when it ends."""
    things: dict[str, list[str]] = {"policies": [], "namespaces": []}
    yield things
    for name in things["policies"]:
        cluster.delete_policy(name)
    for name in things["namespaces"]:
        cluster.delete_namespace(name)


@pytest.fixture
def scanned_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace, and a policy asking the providers the test names (indirect parameter)."""
    providers = request.param
    name, policy = unique("scan"), unique("scan")
    cluster.create_namespace(name, {"mamori-test": name})
    cluster.apply_policy(
        policy,
        {
            "namespaceSelector": {"matchLabels": {"mamori-test": name}},
            "imageScan": {"providers": list(providers), "severityThreshold": "HIGH"},
        },
    )
    yield name
    cluster.delete_policy(policy)
    cluster.delete_namespace(name)
