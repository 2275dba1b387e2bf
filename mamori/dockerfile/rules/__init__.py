"""Dockerfile rules: importing this package imports every module of it, one rule each, in name
order; each registers itself (``mamori/dockerfile/rules/registry.py``). A new rule is one module
here plus its pass and fail fixtures under ``tests/fixtures/dockerfile/<rule-id>/``."""

import importlib
import pkgutil

from mamori.dockerfile.rules.registry import (
    DOCKERFILE_RULES,
    BuildContext,
    DockerfileFinding,
    DockerfileRule,
)

__all__ = [
    "DOCKERFILE_RULES",
    "BuildContext",
    "DockerfileFinding",
    "DockerfileRule",
]

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")
