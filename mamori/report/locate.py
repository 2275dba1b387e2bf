"""The line of a finding's field in the file the user wrote, for reports that annotate code.

Findings name a field path (``spec.template.spec.containers[0].securityContext.runAsNonRoot``);
CI pages want the line to mark. Reading keeps no positions (it stays fast), so a document with
findings is read a second time, from its first line to the next separator, and composed with
PyYAML (which keeps marks; JSON is YAML to it). Only documents with findings pay for this, and a
file is read once, front to back, since results arrive in reading order.

A field that is absent (a container without a ``securityContext``) is placed at its deepest
ancestor that exists; a document that cannot be composed again keeps its first line.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from mamori.manifests import SEPARATOR, Document

if TYPE_CHECKING:
    from yaml.nodes import Node

Step = str | int


# One step of a field path: a key (``spec``), or a bracket (``[0]``, ``[key.with.dots]``).
STEP = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]?")


def field_steps(path: str) -> list[Step]:
    """``a.b[0][key.with.dots]`` → ``["a", "b", 0, "key.with.dots"]``."""
    steps: list[Step] = []
    for key, bracket in STEP.findall(path):
        steps.append(key if key else int(bracket) if bracket.isdigit() else bracket)
    return steps


def field_line(root: Node, steps: Sequence[Step]) -> int:
    """The 0-based line of the deepest node on ``steps`` that exists (a key's own line)."""
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    line = root.start_mark.line
    node = root
    for step in steps:
        if isinstance(node, MappingNode):
            wanted = str(step)
            found = next(
                (
                    (key, value)
                    for key, value in node.value
                    if isinstance(key, ScalarNode) and key.value == wanted
                ),
                None,
            )
            if found is None:
                break
            line, node = found[0].start_mark.line, found[1]
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line
        else:
            break
    return line


class DocumentText:
    """One file's documents as written, read front to back on request.

    The lines of the last document asked for are kept, so the items of a ``List`` and the
    objects of a JSON stream (several documents between two separators) are read once.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._stream: IO[bytes] | None = None
        self._consumed = 0  # lines read from the stream so far
        self._kept_from = 0  # the 1-based line of self._kept[0]
        self._kept: list[bytes] = []

    def text_from(self, line: int) -> str | None:
        """The text from ``line`` (1-based) to the next separator, or None if unreadable."""
        if not self._kept_from <= line < self._kept_from + len(self._kept):
            try:
                self._read_chunk(line)
            except OSError:
                return None
        if not self._kept:
            return None
        return b"".join(self._kept[line - self._kept_from :]).decode("utf-8", "replace")

    def _read_chunk(self, line: int) -> None:
        if self._stream is None or line <= self._consumed:
            self.close()
            self._stream = open(self._path, "rb")  # noqa: SIM115 (closed by close())
            self._consumed = 0
        stream = self._stream
        while self._consumed < line - 1 and stream.readline():
            self._consumed += 1
        self._kept_from, self._kept = line, []
        for raw in iter(stream.readline, b""):
            self._consumed += 1
            if raw.startswith(SEPARATOR):
                break
            self._kept.append(raw)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class FieldLocator:
    """Lines of findings' fields for the documents of one file (``path`` is where it can be
    read again; documents name it as the user did)."""

    def __init__(self, path: str) -> None:
        self._text = DocumentText(path)
        self._root: tuple[int, Node | None] | None = None  # (document line, its root node)

    def lines(self, document: Document, fields: Sequence[str]) -> tuple[int, ...]:
        """The 1-based line of each field of ``document``, in order."""
        root = self._root_of(document.line)
        if root is None:
            return tuple(document.line for _ in fields)
        steps_to_object: list[Step] = [] if document.item is None else ["items", document.item]
        return tuple(
            document.line + field_line(root, [*steps_to_object, *field_steps(field)])
            for field in fields
        )

    def _root_of(self, line: int) -> Node | None:
        if self._root is None or self._root[0] != line:
            text = self._text.text_from(line)
            self._root = (line, None if text is None else compose_first(text))
        return self._root[1]

    def close(self) -> None:
        self._text.close()


def compose_first(text: str) -> Node | None:
    """The first document of ``text`` as PyYAML nodes with marks, or None if it cannot be."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node: Node | None = loader.get_node() if loader.check_node() else None
        return node
    except (yaml.YAMLError, ValueError, RecursionError):
        return None
    finally:
        loader.dispose()


@contextmanager
def spooled_stdin() -> Iterator[str]:
    """Standard input copied to a temporary file, so its documents can be read again."""
    with tempfile.NamedTemporaryFile(prefix="mamori-stdin-") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy)
        copy.flush()
        yield copy.name
