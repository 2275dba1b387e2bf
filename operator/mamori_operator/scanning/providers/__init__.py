"""Scan-result sources, and the one place they register.

Every module of this package defines one provider and registers how to build it with
``@register(Provider.X)``; :func:`build_providers` wires them all for a run. A new source is one
module here plus its name in :class:`mamori.policy.terms.Provider` (the value a policy's
``imageScan.providers`` lists); ``tests/operator/test_provider_registry.py`` checks the two agree.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from mamori.policy.terms import Provider
from mamori_operator.scanning.providers.base import ProviderWiring, ScanProvider

Factory = Callable[[ProviderWiring], ScanProvider]
F = TypeVar("F", bound=Factory)
_NOT_PROVIDERS = frozenset({"base"})


@dataclass(frozen=True)
class Registration:
    """How to build one provider; ``cached``: its answers go through the scan cache (remote)."""

    name: Provider
    build: Factory
    cached: bool


_registered: dict[Provider, Registration] = {}


def register(name: Provider, *, cached: bool = False) -> Callable[[F], F]:
    """Record ``factory`` as the way to build provider ``name`` (once per name)."""

    def record(factory: F) -> F:
        if name in _registered and _registered[name].build is not factory:
            raise RuntimeError(f"scan provider {name!r} registered twice")
        _registered[name] = Registration(name, factory, cached)
        return factory

    return record


def registrations() -> Mapping[Provider, Registration]:
    """Every provider module of this package, imported (so registered), by name."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_PROVIDERS:
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(_registered)


@dataclass(frozen=True)
class Wired:
    """The providers of one run, by name, and the names whose answers are cached."""

    providers: Mapping[str, ScanProvider]
    cached: frozenset[str]


def build_providers(wiring: ProviderWiring) -> Wired:
    built = registrations()
    return Wired(
        providers={name.value: entry.build(wiring) for name, entry in built.items()},
        cached=frozenset(name.value for name, entry in built.items() if entry.cached),
    )
