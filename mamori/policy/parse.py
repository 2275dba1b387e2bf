"""Turn ClusterSecurityPolicy documents into :class:`Policy` values, or say which field is wrong.

The same parser serves the CRD objects the webhook and operator watch and the YAML files that
``mamori check --policy`` and ``mamori webhook --policy`` read, so a policy means one thing
everywhere. The CRD schema already rejects most mistakes at ``kubectl apply``; this is the second
line for files and for clusters whose CRD is older than the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mamori.findings import Enforcement
from mamori.images import InvalidRegistryPattern, RegistryPattern
from mamori.manifests import InputError, ReadLimits, display_name, read_values
from mamori.policy.errors import PolicyError
from mamori.policy.fieldtypes import described
from mamori.policy.model import API_VERSION, KIND, Policy
from mamori.policy.selector import LabelSelector
from mamori.policy.shape import NAMESPACE_NAME_PATTERN, POD_SECURITY_VERSION_PATTERN, SPEC
from mamori.policy.terms import LATEST
from mamori.rules.registry import POD_SECURITY_LEVELS, RuleSettings

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(NAMESPACE_NAME_PATTERN)

POD_SECURITY_VERSION = re.compile(POD_SECURITY_VERSION_PATTERN)

SectionParser = Callable[..., Any]
# A policy is a few dozen lines: far tighter bounds than for manifests.
POLICY_READ_LIMITS = ReadLimits(max_document_bytes=1024 * 1024, max_depth=64)


def section_parsers() -> Mapping[str, SectionParser]:
    """The spec's sections and their parsers, imported where they live."""
    from mamori.policy.image_scan import parse_image_scan
    from mamori.policy.network import parse_network_policy
    from mamori.policy.signatures import parse_image_signatures
    from mamori.policy.vulnerabilities import parse_vulnerabilities

    return {
        "networkPolicy": parse_network_policy,
        "imageScan": parse_image_scan,
        "vulnerabilities": parse_vulnerabilities,
        "imageSignatures": parse_image_signatures,
    }


def parse_policy(document: Mapping[str, Any]) -> Policy:
    """Validate one ClusterSecurityPolicy document."""
    if not isinstance(document, Mapping):
        raise PolicyError("(document)", f"must be an object, got {type(document).__name__}")
    api_version = document.get("apiVersion")
    if api_version != API_VERSION:
        raise PolicyError("apiVersion", f'must be "{API_VERSION}", got {described(api_version)}')
    if document.get("kind") != KIND:
        raise PolicyError("kind", f'must be "{KIND}", got {described(document.get("kind"))}')
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        raise PolicyError("metadata", "must be an object with a name")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError("metadata.name", "must be set")
    if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        raise PolicyError(
            "metadata.name",
            f"must be a lower-case DNS subdomain (a-z, 0-9, '-', '.'), got {described(name)}",
        )
    spec = document.get("spec", {})
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise PolicyError("spec", f"must be an object, got {type(spec).__name__}")
    generation = metadata.get("generation")
    return _parse_spec(
        spec, name=name, generation=generation if isinstance(generation, int) else None
    )


def _parse_spec(value: Mapping[str, Any], *, name: str, generation: int | None) -> Policy:
    spec = SPEC.read(value, path="spec") or {}

    def read(field: str) -> Any:
        return SPEC.value(spec, field, path="spec")

    parsers = section_parsers()
    registries = tuple(_parse_registries(read("trustedRegistries")))
    exempt = _parse_namespace_names(read("exemptNamespaces"), path="spec.exemptNamespaces")
    selector = LabelSelector.parse(read("namespaceSelector"), path="spec.namespaceSelector")
    sections = {
        key: parser(spec[key], path=f"spec.{key}") for key, parser in parsers.items() if key in spec
    }
    return Policy(
        name=name,
        enforcement=Enforcement(read("enforcement")),
        rules=RuleSettings(
            pod_security=POD_SECURITY_LEVELS[read("podSecurity")],
            trusted_registries=registries,
            require_image_digest=read("requireImageDigest"),
            pod_security_version=_parse_pod_security_version(read("podSecurityVersion")),
            switches=frozenset(f.name for f in SPEC.fields if f.switch and read(f.name)),
            vulnerabilities=sections.get("vulnerabilities"),
            signatures=sections.get("imageSignatures") or (),
        ),
        exempt_namespaces=frozenset(exempt),
        namespace_selector=selector,
        generation=generation,
        sections={key: value for key, value in sections.items() if value not in (None, ())},
    )


def _parse_pod_security_version(value: object) -> int | None:
    """``latest`` → None; ``v1.N`` → N. Newer than any rule change is the same as latest."""
    match = POD_SECURITY_VERSION.match(value) if isinstance(value, str) else None
    if match is None:
        raise PolicyError(
            "spec.podSecurityVersion",
            f'must be "{LATEST}" or a Kubernetes version such as "v1.35", got {described(value)}',
        )
    return None if match.group(0) == LATEST else int(match.group(2))


def _parse_registries(value: object) -> Iterator[RegistryPattern]:
    if not isinstance(value, list):
        raise PolicyError(
            "spec.trustedRegistries", f"must be a list of strings, got {described(value)}"
        )
    for index, entry in enumerate(value):
        path = f"spec.trustedRegistries[{index}]"
        if not isinstance(entry, str):
            raise PolicyError(path, f"must be a string, got {described(entry)}")
        try:
            yield RegistryPattern.parse(entry)
        except InvalidRegistryPattern as error:
            raise PolicyError(path, f"{error} (got {described(entry)})") from None


def _parse_namespace_names(value: object, *, path: str) -> list[str]:
    if not isinstance(value, list):
        raise PolicyError(path, f"must be a list of namespace names, got {described(value)}")
    names: list[str] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not DNS_LABEL.match(entry) or len(entry) > 63:
            raise PolicyError(
                f"{path}[{index}]", f"must be a namespace name, got {described(entry)}"
            )
        names.append(entry)
    return names


def iter_policy_documents(documents: Iterable[object]) -> Iterator[Mapping[str, Any]]:
    """Flatten ``kind: List`` and ``ClusterSecurityPolicyList``; skip empty YAML documents."""
    for document in documents:
        if document is None:
            continue
        if isinstance(document, Mapping) and str(document.get("kind", "")).endswith("List"):
            items = document.get("items") or []
            yield from iter_policy_documents(items if isinstance(items, list) else [items])
        else:
            yield document  # type: ignore[misc]


def load_policies(documents: Iterable[object]) -> list[Policy]:
    """Validate every policy document; names must be unique."""
    policies: list[Policy] = []
    seen: set[str] = set()
    for index, document in enumerate(iter_policy_documents(documents)):
        try:
            policy = parse_policy(document)
        except PolicyError as error:
            name = _document_name(document)
            where = f'policy "{name}"' if name else f"policy document {index}"
            raise PolicyError(f"{where}: {error.path}", error.message) from None
        if policy.name in seen:
            raise PolicyError(f'policy "{policy.name}"', "is defined twice")
        seen.add(policy.name)
        policies.append(policy)
    return policies


def load_policy_file(path: str | Path, *, limits: ReadLimits = POLICY_READ_LIMITS) -> list[Policy]:
    """Read policies from a YAML or JSON file (several documents allowed).

    The file is read like a manifest (kubectl's document boundaries, bounded size, no alias
    bombs); any problem, including text that is not UTF-8, is a :class:`PolicyError` naming it.
    """
    documents: list[object] = []
    for value in read_values(str(path), limits=limits):
        if isinstance(value, InputError):
            where = f"{value.source}:{value.line}" if value.line else value.source
            problem = value.message.removeprefix("invalid YAML: ")
            if problem != value.message:
                raise PolicyError(where, f"is not valid YAML: {problem}")
            raise PolicyError(where, problem)
        documents.append(value[0])
    policies = load_policies(documents)
    if not policies:
        raise PolicyError(display_name(str(path)), "contains no ClusterSecurityPolicy")
    return policies


def _document_name(document: object) -> str | None:
    if isinstance(document, Mapping):
        metadata = document.get("metadata")
        if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
            return str(metadata["name"])
    return None
