"""Reading manifests as kubectl does, within bounds (mamori.manifests), and bounded rendering."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.findings import render_value
from mamori.manifests import GO_SPACE, Document, InputError, ReadLimits, _chunks, read_documents


def read(tmp_path: Path, text: str | bytes, **limits: int) -> list[Document | InputError]:
    path = tmp_path / "m.yaml"
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return list(read_documents(str(path), limits=ReadLimits(**limits)))


def laughs(levels: int) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines)


def test_shared_anchors_of_a_normal_manifest_are_read(tmp_path: Path) -> None:
    text = "kind: ConfigMap\nbase: &base {a: 1, b: [1, 2, 3]}\n" + "".join(
        f"k{n}: *base\n" for n in range(50)
    )
    [document] = read(tmp_path, text)
    assert isinstance(document, Document)
    assert document.body["k49"] == {"a": 1, "b": [1, 2, 3]}


@pytest.mark.parametrize("levels", [9, 40])
def test_alias_bomb_is_refused_without_expanding_it(tmp_path: Path, levels: int) -> None:
    started = time.monotonic()
    [error] = read(tmp_path, f"kind: Pod\n{laughs(levels)}\n")
    assert isinstance(error, InputError)
    assert "alias bomb" in error.message and error.line == 5  # l3: the first past the ratio
    assert time.monotonic() - started < 5


def test_alias_that_contains_itself_is_refused(tmp_path: Path) -> None:
    [error] = read(tmp_path, "kind: Pod\nspec: &a {x: [*a]}\n")
    assert isinstance(error, InputError)
    assert "contains it" in error.message


def test_depth_is_counted_through_aliases(tmp_path: Path) -> None:
    deep = "[" * 600 + "]" * 600
    [error] = read(tmp_path, f"kind: Pod\na: &a {deep}\nb: {'[' * 500}*a{']' * 500}\n")
    assert isinstance(error, InputError)
    assert "nested more than 1000 levels" in error.message


def test_document_size_is_bounded(tmp_path: Path) -> None:
    text = "kind: ConfigMap\ndata:\n" + "".join(f"  k{n}: {'x' * 100}\n" for n in range(20))
    first, *rest = read(tmp_path, f"kind: Pod\n---\n{text}", max_document_bytes=1000)
    assert isinstance(first, Document) and first.body == {"kind": "Pod"}
    [error] = rest
    assert isinstance(error, InputError)
    assert error.line == 3 and "larger than 1000 bytes" in error.message


@pytest.mark.parametrize(
    "separator",
    [b"---", b"--- ", b"---# x: y", b"--- # c", b"---\xc2\xa0# x: y", b"---\r", b"---\t"],
)
def test_document_separators_are_kubectls(tmp_path: Path, separator: bytes) -> None:
    text = b"kind: Pod\nmetadata: {name: a}\n" + separator + b"\nkind: Pod\nmetadata: {name: b}\n"
    documents = read(tmp_path, text)
    assert [d.body["metadata"]["name"] for d in documents if isinstance(d, Document)] == ["a", "b"]


@pytest.mark.parametrize("separator", [b"--- {kind: Pod}", b"----", b"---x"])
def test_text_after_a_separator_is_refused_as_kubectl_does(
    tmp_path: Path, separator: bytes
) -> None:
    [error] = read(tmp_path, b"kind: Pod\n" + separator + b"\nkind: Pod\n")
    assert isinstance(error, InputError)
    assert error.line == 2 and "invalid document separator" in error.message


def test_json_stream_is_read_as_json(tmp_path: Path) -> None:
    pods = [{"kind": "Pod", "metadata": {"name": "\U0001f600"}, "n": 1e3}, {"kind": "Pod"}]
    documents = read(tmp_path, "\n".join(json.dumps(pod) for pod in pods))
    assert [d.body for d in documents if isinstance(d, Document)] == pods
    assert [d.line for d in documents] == [1, 2]


def test_documents_stream_before_the_input_ends(tmp_path: Path) -> None:
    """The first object is yielded while the writer still holds the rest back."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    consumed = threading.Event()
    closed_early = threading.Event()

    def writer() -> None:
        with fifo.open("w") as stream:
            stream.write("kind: Pod\nmetadata: {name: first}\n---\n")
            stream.flush()
            if not consumed.wait(timeout=10):
                closed_early.set()
            stream.write("kind: Pod\nmetadata: {name: second}\n")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        documents = read_documents(str(fifo))
        first = next(documents)
        consumed.set()
        assert not closed_early.is_set(), "the first document waited for the end of input"
        assert isinstance(first, Document) and first.body["metadata"]["name"] == "first"
        [second] = list(documents)
        assert isinstance(second, Document) and second.body["metadata"]["name"] == "second"
    finally:
        consumed.set()
        thread.join(timeout=15)


def test_render_value_matches_json_for_ordinary_values() -> None:
    for value in (None, True, 3, 1.5, "x", [1, "a"], {"b": [1, {"c": None}], "a": "é"}):
        assert render_value(value, limit=80) == json.dumps(value, sort_keys=True)
    assert render_value(list(range(100)), limit=20) == "[0, 1, 2, 3, 4, 5..."


def test_render_value_is_bounded_by_the_limit_not_the_value() -> None:
    bomb: object = ["lol"] * 9
    for _ in range(40):
        bomb = [bomb] * 9
    deep: list[object] = []
    cursor = deep
    for _ in range(100_000):
        cursor.append([])
        cursor = cursor[0]  # type: ignore[assignment]
    started = time.monotonic()
    assert render_value(bomb, limit=80).endswith('"lol", "...')
    assert render_value(deep, limit=10) == "[[[[[[[..."
    assert render_value(10**5000, limit=80) == "<integer too long to show>"
    assert time.monotonic() - started < 1


def reference_chunks(data: bytes, limit: int) -> list[tuple[int, bytes] | InputError]:
    """The line-by-line reading that ``_chunks`` replaced, kept as its specification."""
    stream = io.BytesIO(data)
    found: list[tuple[int, bytes] | InputError] = []
    buffer = bytearray()
    line_number, first_line = 0, 1
    while line := stream.readline(limit + 1 - len(buffer)):
        line_number += 1
        if line.startswith(b"---"):
            rest = line[3:].decode("utf-8", "replace").lstrip(GO_SPACE)
            if rest and not rest.startswith("#"):
                return [*found, InputError("x", "separator", line=line_number)]
            if buffer:
                found.append((first_line, bytes(buffer)))
                buffer.clear()
            first_line = line_number + 1
            continue
        buffer += line
        if len(buffer) > limit:
            return [*found, InputError("x", "size", line=first_line)]
    return [*found, (first_line, bytes(buffer))] if buffer else found


class Trickle(io.RawIOBase):
    """A pipe that hands out the input a few bytes at a time, as a slow writer would."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes = data, sizes

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        size = min(len(target), self.sizes.pop() if self.sizes else 7, len(self.data))
        target[:size] = self.data[:size]
        self.data = self.data[size:]
        return size


PIECES = [
    b"---",
    b"---x",
    b"--- # c",
    b"--",
    b"-",
    b"\n",
    b"\n",
    b"a: b",
    b"# c",
    b" ",
    b"\xc2\xa0",
]


@given(
    st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join),
    st.integers(1, 40),
    st.lists(st.integers(1, 9), max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_documents_are_cut_exactly_as_reading_line_by_line_did(
    data: bytes, limit: int, sizes: list[int]
) -> None:
    """Separators, line numbers and the size limit, at every boundary, whatever the reads."""
    stream = io.BufferedReader(Trickle(data, sizes), buffer_size=8)
    got = [
        InputError("x", "separator" if "separator" in c.message else "size", line=c.line)
        if isinstance(c, InputError)
        else c
        for c in _chunks(stream, name="x", limits=ReadLimits(max_document_bytes=limit))
    ]
    assert got == reference_chunks(data, limit)
