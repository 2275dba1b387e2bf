"""The spec is declared once (mamori/policy/shape.py): every committed copy is what it generates,
and the parser accepts exactly the declared fields with the declared defaults."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mamori.policy import PolicyError, parse, parse_policy
from mamori.policy.fieldtypes import MISSING, Boolean, Field, ListOf, Section, Text
from mamori.policy.image_scan import parse_image_scan
from mamori.policy.network import parse_network_policy
from mamori.policy.shape import IMAGE_SCAN, NETWORK_POLICY, SPEC
from mamori_dev.generate import (
    CRD,
    DOCS,
    OUTPUTS,
    REGENERATE,
    ROOT,
    VALUES,
    VALUES_SCHEMA,
    main,
    stale,
    write,
)


def document(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": "shape"},
        "spec": spec,
    }


def test_committed_copies_are_what_the_declaration_generates() -> None:
    out_of_date = stale(ROOT)
    assert out_of_date == [], (
        f"{', '.join(map(str, out_of_date))} differ from mamori/policy/shape.py: run {REGENERATE}"
    )


@pytest.fixture
def copy_of_outputs(tmp_path: Path) -> Path:
    for output in OUTPUTS:
        target = tmp_path / output.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / output.path, target)
    return tmp_path


def _crd_default(text: str) -> str:
    return text.replace("default: restricted", "default: baseline", 1)


def _values_schema_drops_a_field(text: str) -> str:
    schema = json.loads(text)
    del schema["properties"]["policy"]["properties"]["podSecurityVersion"]
    return json.dumps(schema, indent=2) + "\n"


def _values_default(text: str) -> str:
    return text.replace("  podSecurity: restricted", "  podSecurity: baseline", 1)


def _docs_row(text: str) -> str:
    return text.replace(
        "| `spec.requireImageDigest` | bool |", "| `spec.requireImageDigest` | string |"
    )


# Each committed copy, hand-edited the way drift happens: the check must name exactly that file.
MUTATIONS: dict[str, tuple[Path, Callable[[str], str]]] = {
    "crd-default": (CRD, _crd_default),
    "values-schema-field": (VALUES_SCHEMA, _values_schema_drops_a_field),
    "values-default": (VALUES, _values_default),
    "docs-table": (DOCS, _docs_row),
}


@pytest.mark.parametrize(
    ("path", "mutate"), [pytest.param(*row, id=name) for name, row in MUTATIONS.items()]
)
def test_a_hand_edited_copy_is_caught_and_regenerated(
    copy_of_outputs: Path, path: Path, mutate: Callable[[str], str], capsys: Any
) -> None:
    assert stale(copy_of_outputs) == []
    target = copy_of_outputs / path
    original = target.read_text()
    mutated = mutate(original)
    assert mutated != original, "the mutation must change the file"
    target.write_text(mutated)
    assert stale(copy_of_outputs) == [path]
    assert main(["--check", "--root", str(copy_of_outputs)]) == 1
    complaint = capsys.readouterr().err
    assert f"{path} is out of date" in complaint
    assert REGENERATE in complaint
    assert write(copy_of_outputs) == [path]
    assert target.read_text() == original
    assert main(["--check", "--root", str(copy_of_outputs)]) == 0


def test_the_crd_spec_schema_lists_every_declared_field() -> None:
    crd = yaml.safe_load((ROOT / CRD).read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert tuple(spec["properties"]) == SPEC.names
    for name in ("networkPolicy", "imageScan"):
        assert tuple(spec["properties"][name]["properties"]) == SPEC.section(name).names


def walk(section: Section, path: str) -> Iterator[tuple[str, Section]]:
    yield path, section
    for field in section.fields:
        if isinstance(field.type, Section):
            yield from walk(field.type, f"{path}.{field.name}")


@pytest.mark.parametrize(("path", "section"), list(walk(SPEC, "spec")))
def test_an_undeclared_field_is_refused_by_name(path: str, section: Section) -> None:
    spec: dict[str, Any] = {"typo": True}
    for name in reversed(path.split(".")[1:]):
        spec = {name: {**({"providers": ["ecr"]} if name == "imageScan" else {}), **spec}}
    with pytest.raises(PolicyError) as caught:
        parse_policy(document(spec))
    assert caught.value.path == f"{path}.typo"
    assert caught.value.message.startswith("unknown field (known fields: ")
    assert all(name in caught.value.message for name in section.names)


def declared_defaults(section: Section) -> dict[str, Any]:
    return {f.name: f.default for f in section.fields if f.default is not MISSING}


def test_declared_defaults_are_what_the_parser_assumes() -> None:
    """A spec spelling out every declared default means what an empty spec means."""
    assert parse_policy(document(declared_defaults(SPEC))) == parse_policy(document({}))
    assert parse_network_policy(
        declared_defaults(NETWORK_POLICY), path="spec.networkPolicy"
    ) == parse_network_policy({}, path="spec.networkPolicy")
    scan = {"providers": ["ecr"]}
    assert parse_image_scan(
        {**declared_defaults(IMAGE_SCAN), **scan}, path="spec.imageScan"
    ) == parse_image_scan(scan, path="spec.imageScan")


def test_null_means_the_declared_default_as_in_the_api_server() -> None:
    nulls = {name: None for name in SPEC.names}
    assert parse_policy(document(nulls)) == parse_policy(document({}))


def test_a_declared_switch_reaches_the_rules_without_a_parser_edit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What adding ``requireReadOnlyRootFilesystem`` takes: its Field, and the rule reading it."""
    switch = Field(
        "requireReadOnlyRootFilesystem", Boolean(), "Read-only root.", default=False, switch=True
    )
    monkeypatch.setattr(parse, "SPEC", Section(fields=(*SPEC.fields, switch)))
    on = parse.parse_policy(document({"requireReadOnlyRootFilesystem": True}))
    assert on.rules.switched_on("requireReadOnlyRootFilesystem")
    assert not parse.parse_policy(document({})).rules.switched_on("requireReadOnlyRootFilesystem")
    with pytest.raises(PolicyError) as caught:
        parse.parse_policy(document({"requireReadOnlyRootFilesystem": "yes"}))
    assert str(caught.value) == (
        'spec.requireReadOnlyRootFilesystem: must be true or false, got "yes"'
    )


def test_only_a_boolean_can_be_a_switch() -> None:
    with pytest.raises(TypeError, match="only a boolean field can be a switch"):
        Field("x", Text(), "x", switch=True)


def test_every_declared_section_has_its_parser() -> None:
    declared = {
        f.name
        for f in SPEC.fields
        if isinstance(f.type, Section)
        or (isinstance(f.type, ListOf) and isinstance(f.type.item, Section))
    }
    assert set(parse.section_parsers()) == declared
