"""Read Kubernetes manifests from files, directories and stdin, remembering where each came from.

``mamori check`` must say which file and line a problem is in, and must keep going past a bad
file so one typo does not hide the verdict on everything else.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Document:
    """One object of a manifest; ``index`` counts documents in the file, ``item`` List entries."""

    source: str
    index: int
    line: int
    body: Mapping[str, Any]
    item: int | None = None


@dataclass(frozen=True, slots=True)
class InputError:
    """A file or document that could not be read; reported, never fatal to the others."""

    source: str
    message: str
    line: int | None = None

    def render(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


def expand_paths(paths: list[str]) -> Iterator[str | InputError]:
    """Yield manifest file names in a stable order; directories are walked recursively."""
    for raw in paths:
        if raw == STDIN:
            yield STDIN
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                str(p) for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file()
            )
            if not found:
                yield InputError(raw, "directory has no *.yaml, *.yml or *.json files")
            yield from found
        elif path.is_file():
            yield raw
        else:
            yield InputError(raw, "no such file or directory")


def read_documents(source: str) -> Iterator[Document | InputError]:
    """Parse every YAML/JSON document of one source; ``kind: List`` is flattened."""
    try:
        text = sys.stdin.read() if source == STDIN else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        yield InputError(source, f"cannot read: {error}")
        return
    name = "<stdin>" if source == STDIN else source
    loader = SafeLoader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            line = node.start_mark.line + 1
            body = loader.construct_document(node)
            yield from _documents_of(body, source=name, index=index, line=line)
            index += 1
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        yield InputError(name, f"invalid YAML: {problem}", line=mark.line + 1 if mark else None)
    finally:
        loader.dispose()


def _documents_of(
    body: object, *, source: str, index: int, line: int
) -> Iterator[Document | InputError]:
    if body is None:
        return
    if not isinstance(body, Mapping):
        yield InputError(
            source, f"document {index} is a {type(body).__name__}, not an object", line=line
        )
        return
    if body.get("kind") == "List" or (
        str(body.get("kind", "")).endswith("List") and isinstance(body.get("items"), list)
    ):
        items = body.get("items")
        if not isinstance(items, list):
            yield InputError(source, f"document {index}: List has no items list", line=line)
            return
        for position, item in enumerate(items):
            if isinstance(item, Mapping):
                yield Document(source, index, line, item, item=position)
            else:
                yield InputError(source, f"document {index} item {position} is not an object", line)
        return
    yield Document(source, index, line, body)
