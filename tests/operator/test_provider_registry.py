"""The scan providers' one registration point agrees with the names a policy may list."""

from __future__ import annotations

import pytest

from mamori.policy.terms import Provider
from mamori_operator.config import OperatorConfig
from mamori_operator.scanning.providers import build_providers, register, registrations
from mamori_operator.scanning.providers.base import ProviderWiring
from mamori_operator.state.cluster import ClusterState


def test_every_policy_provider_name_has_exactly_one_registered_source() -> None:
    assert set(registrations()) == set(Provider)


def test_the_wired_providers_answer_to_their_registered_names() -> None:
    config = OperatorConfig(ecr_endpoint_url="http://127.0.0.1:9")
    wired = build_providers(ProviderWiring(config=config, state=ClusterState()))
    assert {name: provider.name for name, provider in wired.providers.items()} == {
        name.value: name.value for name in Provider
    }
    # Only the remote source goes through the per-digest cache; in-cluster objects are watched.
    assert wired.cached == frozenset({Provider.ECR.value})


def test_a_second_source_under_a_taken_name_is_refused() -> None:
    registrations()
    with pytest.raises(RuntimeError, match="registered twice"):
        register(Provider.IMAGESCAN)(lambda wiring: registrations()[Provider.ECR].build(wiring))
