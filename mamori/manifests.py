"""Read Kubernetes manifests the way kubectl does, remembering where each object came from.

``mamori check`` is only worth running if it judges exactly what ``kubectl apply -f`` would
create, so reading mirrors kubectl (k8s.io/apimachinery and cli-runtime):

- A file is cut into documents at lines that start with ``---`` followed by nothing but spaces
  or a comment (``---# x: y`` too, which a YAML parser alone reads as a mapping key); any other
  text after ``---`` is an error, as in kubectl.
- Any object with an ``items`` key is a list, whatever its ``kind`` (a ConfigMap or a Pod with
  ``items`` creates only the items). Items that name neither kind nor apiVersion take the list's
  kind without its ``List`` suffix and the list's apiVersion (``PodList`` items are Pods). A list
  without a kind, items that are not a list of objects, and a list inside a list are refused,
  as kubectl refuses them.

Reading is bounded so that a hostile file cannot exhaust memory (see :class:`ReadLimits`):
a document larger than ``max_document_bytes`` is refused, YAML alias expansion is refused past
the ratio go-yaml (kubectl's YAML decoder) allows, and nesting past ``max_depth`` is refused.
Documents are produced one at a time, so a large file is never held in memory whole. Most are
plain block YAML, read by :mod:`mamori.block_yaml` (the same values, several times faster); the
rest by PyYAML's C loader, imported only then.
Problems name the file and line, and never stop the other files from being judged.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from mamori.block_yaml import read_block_yaml

if TYPE_CHECKING:
    from yaml.nodes import Node

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Dockerfiles `mamori check` judges too: Dockerfile, Containerfile, Dockerfile.<x>,
# <x>.Dockerfile (a manifest suffix wins: Dockerfile.yaml is YAML). Not Dockerfile.dockerignore,
# BuildKit's per-Dockerfile ignore file.
DOCKERFILE_NAMES = ("Dockerfile", "Containerfile")
NOT_DOCKERFILE_SUFFIXES = (*MANIFEST_SUFFIXES, ".dockerignore")
STDIN = "-"

SEPARATOR = b"---"
READ_SIZE = 64 * 1024  # bytes asked of the stream at a time (a pipe may return fewer)
# What Go's unicode.IsSpace accepts (strings.TrimSpace in kubectl's YAML reader).
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" + (
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# go-yaml v2 (sigs.k8s.io/yaml → kubectl) refuses a document once more than this share of its
# decoded nodes came from alias expansion: 99% up to 400,000 nodes, falling to 10% at 4,000,000.
ALIAS_RATIO_LOW, ALIAS_RATIO_HIGH = 400_000, 4_000_000
LIBYAML_MAX_DEPTH = 1000  # the C parser refuses deeper nesting as written
COUNT_CAP = 10**15  # expanded counts saturate here; a bomb's true size need not be computed


class ReadLimits(NamedTuple):
    """How much one document may cost to read; past a limit it is an input error (exit 2).

    ``max_document_bytes``: one YAML/JSON document (a ``kind: List`` counts as one).
    ``max_depth``: nesting of mappings and lists, counted after alias expansion.

    (The values of this module are named tuples: see :class:`mamori.findings.Finding`.)
    """

    max_document_bytes: int = 32 * 1024 * 1024
    max_depth: int = LIBYAML_MAX_DEPTH


class Document(NamedTuple):
    """One object of a manifest; ``index`` counts documents in the file, ``item`` List entries."""

    source: str
    index: int  # type: ignore[assignment]  # shadows tuple.index, which no caller needs
    line: int
    body: Mapping[str, Any]
    item: int | None = None


class InputError(NamedTuple):
    """A file or document that could not be read; reported, never fatal to the others."""

    source: str
    message: str
    line: int | None = None

    def render(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


class DocumentRefused(ValueError):
    """A document too deep or too aliased to read safely; ``node`` is where that showed."""

    def __init__(self, message: str, *, node: Node) -> None:
        super().__init__(message)
        self.line = node.start_mark.line  # 0-based, within the parsed chunk


def display_name(path: str) -> str:
    """A file name fit for any terminal: undecodable bytes are shown as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_dockerfile(path: str) -> bool:
    """Whether ``path`` is named like a Dockerfile (see ``DOCKERFILE_NAMES``)."""
    name = (_components(path) or [""])[-1]  # Path(path).name
    if name.endswith(NOT_DOCKERFILE_SUFFIXES):
        return False
    return any(
        name == base
        or name.startswith(f"{base}.")
        or name.endswith((f".{base}", f".{base.lower()}"))
        for base in DOCKERFILE_NAMES
    )


def expand_paths(paths: list[str]) -> Iterator[str | InputError]:
    """Yield manifest and Dockerfile names in a stable order; directories are walked
    recursively."""
    for raw in paths:
        if raw == STDIN:
            yield STDIN
            continue
        mode = _mode_of(raw)
        if mode is not None and stat.S_ISDIR(mode):
            from pathlib import Path  # only to walk a directory: one file does without it

            found = sorted(
                str(p)
                for p in Path(raw).rglob("*")
                if (p.suffix in MANIFEST_SUFFIXES or is_dockerfile(p.name)) and p.is_file()
            )
            if not found:
                yield InputError(
                    display_name(raw),
                    "directory has no *.yaml, *.yml or *.json files or Dockerfiles",
                )
            yield from found
        elif mode is not None and stat.S_ISREG(mode):
            yield raw
        else:
            yield InputError(display_name(raw), "no such file or directory")


# Paths are read exactly as pathlib reads them (``Path(raw).is_dir()``, ``.is_file()``,
# ``.name``); pathlib itself (with urllib.parse and ipaddress, 3 ms of an installed mamori's
# start) is imported only to walk a directory.
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)  # pathlib's "not there"


def _components(path: str) -> list[str]:
    """``path``'s components as pathlib parses it: empty and ``.`` components dropped."""
    return [part for part in path.split("/") if part not in ("", ".")]


def _mode_of(path: str) -> int | None:
    """``st_mode`` of what ``Path(path)`` names (``""`` is ``.``, ``a/`` is ``a``); None when
    pathlib would call it absent. Any other error is raised, as pathlib raises it."""
    root = "/" if path.startswith("/") else ""
    try:
        return os.stat(root + "/".join(_components(path)) or ".").st_mode
    except OSError as error:
        if error.errno not in _ABSENT:
            raise
        return None
    except ValueError:  # a NUL in the name
        return None


def read_documents(
    source: str, *, limits: ReadLimits | None = None
) -> Iterator[Document | InputError]:
    """Yield every object of one source, one at a time, as kubectl would apply them."""
    name = "<stdin>" if source == STDIN else display_name(source)
    for index, value in enumerate(read_values(source, limits=limits)):
        if isinstance(value, InputError):
            yield value
            return
        body, line = value
        yield from _objects_of(body, source=name, index=index, line=line)


def read_values(
    source: str, *, limits: ReadLimits | None = None
) -> Iterator[tuple[object, int] | InputError]:
    """Yield each YAML/JSON document of a file (or ``-``) as a value with its first line.

    Reading stops at the first error, which is yielded last: kubectl stops there too.
    """
    limits = limits or ReadLimits()
    name = "<stdin>" if source == STDIN else display_name(source)
    try:
        stream: IO[bytes] = sys.stdin.buffer if source == STDIN else open(source, "rb")  # noqa: SIM115
    except OSError as error:
        yield InputError(name, f"cannot read: {error.strerror or error}")
        return
    try:
        for chunk in _chunks(stream, name=name, limits=limits):
            if isinstance(chunk, InputError):
                yield chunk
                return
            first_line, data = chunk
            for value in _parse_chunk(data, name=name, first_line=first_line, limits=limits):
                yield value
                if isinstance(value, InputError):
                    return
    except OSError as error:
        yield InputError(name, f"cannot read: {error.strerror or error}")
    finally:
        if source != STDIN:
            stream.close()


def _chunks(
    stream: IO[bytes], *, name: str, limits: ReadLimits
) -> Iterator[tuple[int, bytes] | InputError]:
    """Cut a stream into documents where kubectl's YAML reader does, within the size limit.

    The result is that of reading line by line with ``readline(limit + 1 - len(document))``
    (what this replaced; the tests keep it as the reference), but the lines between two
    separators are taken in one slice when they fit: a few Python steps per document, not
    per line. Only the separator lines, and a line that crosses the limit, are read one by one.
    """
    limit = limits.max_document_bytes
    read = getattr(stream, "read1", stream.read)
    document = bytearray()
    line_number = 0  # lines read so far, as readline would count them
    first_line = 1
    data = bytearray()  # read from the stream; the next line starts at ``position``
    position = 0
    scanned = 0  # data[position:scanned] is known to hold no newline (a long line's head)
    at_end = False
    while True:
        scanned = max(scanned, position)
        # The lines before the next "---" line, or before the last incomplete line, at once.
        if not data.startswith(SEPARATOR, position):
            separator = data.find(b"\n" + SEPARATOR, scanned)
            stop = separator + 1 if separator >= 0 else data.rfind(b"\n", scanned) + 1
            if stop > position and len(document) + stop - position <= limit:
                document += data[position:stop]
                line_number += data.count(b"\n", position, stop)
                position = scanned = stop
        # Then one line as readline(room) returns it: whole, or cut at the room left.
        room = limit + 1 - len(document)
        newline = data.find(b"\n", scanned)
        if newline < 0 and not at_end and len(data) - position < room:
            more = read(READ_SIZE)
            if more:
                del data[:position]  # cheap: a bytearray drops its head without copying
                scanned = len(data)
                data += more
                position = 0
            else:
                at_end = True
            continue
        end = newline + 1 if newline >= 0 else len(data)
        line = data[position : min(end, position + room)]
        if not line:
            break
        position += len(line)
        line_number += 1
        if line.startswith(SEPARATOR):
            rest = line[len(SEPARATOR) :].decode("utf-8", "replace").lstrip(GO_SPACE)
            if rest and not rest.startswith("#"):
                yield InputError(
                    name,
                    f"invalid document separator {rest.strip()[:40]!r} (kubectl refuses it too)",
                    line=line_number,
                )
                return
            if document:
                yield first_line, bytes(document)
                document.clear()
            first_line = line_number + 1
            continue
        document += line
        if len(document) > limit:
            yield InputError(
                name,
                f"document is larger than {_size(limit)}, the most "
                "mamori check reads in one document",
                line=first_line,
            )
            return
    if document:
        yield first_line, bytes(document)


def _parse_chunk(
    data: bytes, *, name: str, first_line: int, limits: ReadLimits
) -> Iterator[tuple[object, int] | InputError]:
    """Parse one chunk's YAML (or JSON) documents, refusing bombs before building values."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = first_line + data.count(b"\n", 0, error.start)
        yield InputError(name, f"is not UTF-8 text (byte {error.start} of the document)", line=line)
        return
    if text.lstrip(GO_SPACE + "\ufeff").startswith("{"):
        values = _json_values(text, first_line=first_line)
        if values is not None:
            yield from values
            return
    if limits.max_depth >= LIBYAML_MAX_DEPTH:  # the subset nests far less deep than that
        block = read_block_yaml(text)
        if block is not None:
            value, line = block
            yield value, first_line + line
            return
    yield from _yaml_values(text, name=name, first_line=first_line, limits=limits)


def _yaml_values(
    text: str, *, name: str, first_line: int, limits: ReadLimits
) -> Iterator[tuple[object, int] | InputError]:
    """Parse with PyYAML (imported here: ~10 ms, paid only when a document needs it)."""
    import yaml

    loader: yaml.SafeLoader | None = None
    line = first_line
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            line = first_line + node.start_mark.line
            # Without anchors there are no aliases to expand, and libyaml bounds the depth.
            if "&" in text or limits.max_depth < LIBYAML_MAX_DEPTH:
                check_node_limits(node, limits=limits)
            yield loader.construct_document(node), line
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        where = first_line + mark.line if mark else None
        yield InputError(name, f"invalid YAML: {problem}", line=where)
    except DocumentRefused as error:
        yield InputError(name, str(error), line=first_line + error.line)
    except (ValueError, RecursionError) as error:  # e.g. an integer past Python's digit limit
        yield InputError(name, f"cannot read a value: {error}", line=line)
    finally:
        if loader is not None:
            loader.dispose()


def _json_values(text: str, *, first_line: int) -> list[tuple[object, int]] | None:
    """A chunk that is a stream of JSON objects, parsed as JSON (as kubectl does); else None.

    YAML reads most JSON the same, but not all (``"\\ud83d\\ude00"`` surrogate pairs,
    ``1e3``), and kubectl decodes such a file as JSON.
    """
    decoder = json.JSONDecoder(parse_constant=_refuse_constant)
    values: list[tuple[object, int]] = []
    position = 0
    try:
        while True:
            while position < len(text) and text[position] in GO_SPACE + "\ufeff":
                position += 1
            if position == len(text):
                return values
            value, end = decoder.raw_decode(text, position)
            values.append((value, first_line + text.count("\n", 0, position)))
            position = end
    except (ValueError, RecursionError):
        return None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def check_node_limits(root: Node, *, limits: ReadLimits) -> None:
    """Refuse a composed YAML document whose alias expansion or nesting is out of bounds.

    Aliases are shared in the composed graph, so this costs one visit per written node, however
    large the expansion; the counts are those go-yaml keeps while decoding (every node decoded,
    and those decoded inside an alias), so a document kubectl reads is read here too.
    """
    from yaml.nodes import MappingNode, SequenceNode

    # id(node) → (nodes decoded, of which inside aliases, depth), once the node is complete.
    done: dict[int, tuple[int, int, int]] = {}
    defined_in: dict[int, tuple[int, int]] = {}  # first occurrence: (id(parent), position)
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if not children_done:
            if key in open_nodes:
                raise DocumentRefused("an alias refers to a node that contains it", node=node)
            if key in done:
                continue
            open_nodes.add(key)
            stack.append((node, True))
            for position in range(len(children) - 1, -1, -1):
                child = children[position]
                if id(child) in open_nodes:
                    raise DocumentRefused("an alias refers to a node that contains it", node=child)
                if id(child) not in done and id(child) not in defined_in:
                    defined_in[id(child)] = (key, position)
                stack.append((child, False))
            continue
        decoded, aliased, depth = 1, 0, 0
        for position, child in enumerate(children):
            child_decoded, child_aliased, child_depth = done[id(child)]
            depth = max(depth, child_depth)
            if defined_in.get(id(child)) == (key, position):
                decoded += child_decoded
                aliased += child_aliased
            else:  # an alias: go-yaml decodes the alias node, then the whole target again
                decoded += 1 + child_decoded
                aliased += child_decoded
        decoded, aliased = min(decoded, COUNT_CAP), min(aliased, COUNT_CAP)
        if isinstance(node, (MappingNode, SequenceNode)):
            depth += 1
        if depth > limits.max_depth:
            raise DocumentRefused(
                f"values are nested more than {limits.max_depth} levels deep (aliases expanded)",
                node=node,
            )
        if aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded):
            raise DocumentRefused(
                f"YAML aliases expand this value to {decoded:,} nodes or more, "
                f"{aliased / decoded:.0%} of them copies: refused as an alias bomb "
                "(kubectl's YAML decoder refuses it too)",
                node=node,
            )
        open_nodes.discard(key)
        done[key] = (decoded, aliased, depth)


def _children(node: Node) -> list[Node]:
    from yaml.nodes import MappingNode, SequenceNode

    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _allowed_alias_ratio(decoded: int) -> float:
    if decoded <= ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


def _objects_of(
    body: object, *, source: str, index: int, line: int
) -> Iterator[Document | InputError]:
    """The objects kubectl would apply from one decoded document."""
    if body is None:
        return
    if not isinstance(body, Mapping):
        yield InputError(
            source, f"document {index} is a {type(body).__name__}, not an object", line=line
        )
        return
    if "items" not in body:
        yield Document(source, index, line, body)
        return
    kind = body.get("kind")
    if not isinstance(kind, str) or not kind:
        yield InputError(
            source, f"document {index} has items but no kind (kubectl refuses it)", line=line
        )
        return
    items = body["items"]
    if items is None:
        return
    if not isinstance(items, list):
        yield InputError(source, f"document {index}: items must be a list of objects", line=line)
        return
    api_version = body.get("apiVersion")
    objects: list[Mapping[str, Any]] = []
    for position, item in enumerate(items):
        if item is None:
            item = {}
        if not isinstance(item, Mapping):
            yield InputError(
                source, f"document {index} item {position} is not an object", line=line
            )
            return
        if isinstance(item.get("items"), list):
            yield InputError(
                source,
                f"document {index} item {position} is a list inside a list (kubectl refuses it)",
                line=line,
            )
            return
        if not _names(item.get("kind")) and not _names(item.get("apiVersion")):
            item = {
                **item,
                "kind": kind.removesuffix("List"),
                "apiVersion": api_version if isinstance(api_version, str) else "",
            }
        objects.append(item)
    for position, item in enumerate(objects):
        yield Document(source, index, line, item, item=position)


def _names(value: object) -> bool:
    """Whether a kind or apiVersion field is set as kubectl reads it (a non-empty string)."""
    return isinstance(value, str) and bool(value)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
