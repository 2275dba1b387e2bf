"""A fast reader for the plain block YAML that most manifests are, exact or not at all.

PyYAML's C parser still builds a Python node, two marks and a resolver call for every scalar,
then constructs values with generators: about two thirds of ``mamori check``'s time on a large
input. Most manifests use a small part of YAML (block mappings and sequences, one-line plain or
quoted scalars, one-line flow lists and maps of scalars, comments), and that part can be read
line by line with a regular expression.

:func:`read_block_yaml` reads exactly that part and returns ``None`` for anything else — flow
collections that nest or span lines, anchors, aliases, tags, block and multi-line scalars,
escapes, tabs, non-ASCII or control characters, directives, complex keys, odd indentation —
so the caller falls back to PyYAML, which then reads the document (or reports its error) as
before. Plain scalars are typed by PyYAML's implicit-resolver table (the same YAML 1.1 patterns
in the same order; a test compares the two) and built as its SafeConstructor builds them
(``yes`` is a bool, ``0x1F`` an int, ``1:30`` the int 90; a date falls back), so a document this
module accepts gives the value ``yaml.safe_load`` gives, and the first line of its root node.
It imports nothing from PyYAML, so a run whose manifests are all plain never loads it.
"""

from __future__ import annotations

import re
from typing import Any

# A plain scalar on one line, without the comment or spaces after it: it starts with a character
# that cannot start another token (or with "-", "?" or ":" before a non-space: "-1", "--flag"),
# and holds no ": " (a nested mapping, or an error) and no " #" (a comment starts there).
PLAIN = (
    r"(?:[A-Za-z0-9_./~+()$=<^;\\]|[-?:](?=[^ ]))"
    r"(?:[^ :#]|:(?=[^ ])|#| +(?=[^ #]))*"
)
# One line: indentation, an optional "- " entry marker, an optional "key:" (plain, one word, at
# most 1,000 characters: libyaml's simple-key limit is 1,024), then a plain scalar and its
# comment, or any other text (nothing, a comment, a quoted scalar, or what PyYAML must read).
LINE = re.compile(
    r"(?P<indent> *)(?P<dash>- +)?"
    r"(?:(?P<key>[A-Za-z0-9_][A-Za-z0-9_./-]{0,999}):(?= |$) *)?"
    rf"(?:(?P<plain>{PLAIN})(?: +#.*| *)|(?P<other>.*))"
)
# What the whole document may contain: printable ASCII and newlines (no tabs, no CR, no
# control characters). Anchors, aliases and tags are refused where they could start a node.
OUTSIDE_SUBSET = re.compile(r"[^\x20-\x7e\n]")
DOUBLE_QUOTED = re.compile(r'"([^"\\]*)"(?: +#.*)?')
SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*)'(?: +#.*)?")
# One-line flow collections, as manifests write them: ``drop: ["ALL"]``,
# ``capabilities: {drop: [ALL]}``. Their plain scalars are words separated by single spaces,
# without the characters that mean something in flow context (``,:[]{}#?`` and quotes).
FLOW_WORD = r"[A-Za-z0-9_./~+()$=<^;\\]"
FLOW_PLAIN = re.compile(rf"{FLOW_WORD}(?:{FLOW_WORD}|-| (?={FLOW_WORD}|-))*")
FLOW_DOUBLE_QUOTED = re.compile(r'"([^"\\]*)"')
FLOW_SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*)'")
FLOW_KEY_END = re.compile(r": +")
FLOW_END = re.compile(r"(?: +#.*)?")  # after the collection: nothing, or a comment
MAX_FLOW_DEPTH = 20
MAX_DEPTH = 200  # deeper than any manifest; PyYAML reads (and bounds) the rest

# YAML 1.1's implicit types of plain scalars as PyYAML's Resolver registers them: tag, pattern
# and the first characters it is tried for, in registration order (which decides ties).
IMPLICIT_TYPES: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = (
    (
        "tag:yaml.org,2002:bool",
        re.compile(
            r"""^(?:yes|Yes|YES|no|No|NO
                    |true|True|TRUE|false|False|FALSE
                    |on|On|ON|off|Off|OFF)$""",
            re.X,
        ),
        tuple("yYnNtTfFoO"),
    ),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        tuple("-+0123456789."),
    ),
    (
        "tag:yaml.org,2002:int",
        re.compile(
            r"""^(?:[-+]?0b[0-1_]+
                    |[-+]?0[0-7_]+
                    |[-+]?(?:0|[1-9][0-9_]*)
                    |[-+]?0x[0-9a-fA-F_]+
                    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
            re.X,
        ),
        tuple("-+0123456789"),
    ),
    ("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ("<",)),
    (
        "tag:yaml.org,2002:null",
        re.compile(
            r"""^(?: ~
                    |null|Null|NULL
                    | )$""",
            re.X,
        ),
        ("~", "n", "N", ""),
    ),
    (
        "tag:yaml.org,2002:timestamp",
        re.compile(
            r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
                    |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
                     (?:[Tt]|[ \t]+)[0-9][0-9]?
                     :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
                     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
            re.X,
        ),
        tuple("0123456789"),
    ),
    ("tag:yaml.org,2002:value", re.compile(r"^(?:=)$"), ("=",)),
    ("tag:yaml.org,2002:yaml", re.compile(r"^(?:!|&|\*)$"), tuple("!&*")),
)


def _by_first_character() -> dict[str, tuple[tuple[str, re.Pattern[str]], ...]]:
    table: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {}
    for tag, pattern, first in IMPLICIT_TYPES:
        for character in first:
            table[character] = (*table.get(character, ()), (tag, pattern))
    return table


RESOLVERS = _by_first_character()
BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
# The words those two patterns match, with their values: for a scalar starting with one of these
# characters, no other implicit type applies (a test checks both against PyYAML).
WORDS: dict[str, bool | None] = {
    spelling: value
    for word, value in (*BOOLS.items(), ("null", None))
    for spelling in (word, word.capitalize(), word.upper())
}
WORDS["~"] = None
WORD_STARTS = frozenset("yYnNtTfFoO~")
INFINITY = float("inf")
NAN = -INFINITY / INFINITY  # the NaN PyYAML builds (its sign bit included)


_NOTHING = object()  # a line with no value on it


class _NotInSubset(Exception):
    """The document uses YAML this module does not read; PyYAML will."""


def plain_scalar(text: str) -> object:
    """A plain scalar's value: its YAML 1.1 implicit type, else the string itself."""
    if text[:1] in WORD_STARTS:  # only the bool and null words can match: no regex needed
        return WORDS.get(text, text)
    for tag, pattern in RESOLVERS.get(text[:1], ()):
        if pattern.match(text):
            return _typed(tag, text)
    return text


def _typed(tag: str, text: str) -> object:
    if tag == "tag:yaml.org,2002:int":
        return _integer(text)
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return BOOLS[text.lower()]
    if tag == "tag:yaml.org,2002:float":
        return _float(text)
    raise _NotInSubset(tag)  # dates and merge keys: PyYAML builds them (or refuses them)


def _integer(text: str) -> int:
    """``0b1_0``, ``017`` (octal), ``0x1F``, ``1:30`` (base 60) and decimals, signed."""
    digits = text.replace("_", "")
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    if digits == "0":
        return 0
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits[0] == "0":
        return sign * int(digits, 8)
    if ":" in digits:
        total = 0
        for part in digits.split(":"):
            total = total * 60 + int(part)
        return sign * total
    return sign * int(digits)


def _float(text: str) -> float:
    """``1.5``, ``-.inf``, ``.NaN`` and ``1:30.5`` (base 60), signed."""
    digits = text.replace("_", "").lower()
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    if digits == ".inf":
        return sign * INFINITY
    if digits == ".nan":
        return NAN
    if ":" in digits:  # summed from the last part up, as PyYAML does (same rounding)
        total, base = 0.0, 1
        for part in reversed(digits.split(":")):
            total += float(part) * base
            base *= 60
        return sign * total
    return sign * float(digits)


def _other_value(text: str) -> object:
    """A value that is not a plain scalar: quoted, or a flow collection."""
    text = text.rstrip(" ")
    if text[0] == '"':
        match = DOUBLE_QUOTED.fullmatch(text)
        if match:
            return match.group(1)
    elif text[0] == "'":
        match = SINGLE_QUOTED.fullmatch(text)
        if match:
            return match.group(1).replace("''", "'")
    elif text[0] in "[{":
        value, end = _flow_collection(text, 0, depth=1)
        if FLOW_END.fullmatch(text, end):
            return value
    raise _NotInSubset(text)


def _flow_collection(text: str, position: int, *, depth: int) -> tuple[object, int]:
    """The ``[...]`` or ``{...}`` at ``position``, and where it ends.

    Entries are separated by a comma; keys are plain words followed by ": ". A trailing comma,
    an entry that spans lines, a key that is not a word, and ``[a: b]`` (a mapping inside a
    sequence) are left to PyYAML.
    """
    if depth > MAX_FLOW_DEPTH:
        raise _NotInSubset(text)
    is_mapping = text[position] == "{"
    closing = "}" if is_mapping else "]"
    collection: Any = {} if is_mapping else []
    position = _after_spaces(text, position + 1)
    if text.startswith(closing, position):
        return collection, position + 1
    while True:
        if is_mapping:
            key = FLOW_PLAIN.match(text, position)
            separator = FLOW_KEY_END.match(text, key.end()) if key else None
            if key is None or separator is None:
                raise _NotInSubset(text)
            value, position = _flow_node(text, separator.end(), depth=depth)
            collection[plain_scalar(key.group())] = value
        else:
            value, position = _flow_node(text, position, depth=depth)
            collection.append(value)
        position = _after_spaces(text, position)
        if text.startswith(closing, position):
            return collection, position + 1
        if not text.startswith(",", position):
            raise _NotInSubset(text)
        position = _after_spaces(text, position + 1)
        if text.startswith(closing, position):
            raise _NotInSubset(text)  # a trailing comma


def _after_spaces(text: str, position: int) -> int:
    while text.startswith(" ", position):
        position += 1
    return position


def _flow_node(text: str, position: int, *, depth: int) -> tuple[object, int]:
    """The flow entry at ``position``: a nested collection, a quoted or a plain scalar."""
    first = text[position : position + 1]
    if first in ("[", "{"):
        return _flow_collection(text, position, depth=depth + 1)
    if first == '"':
        match = FLOW_DOUBLE_QUOTED.match(text, position)
        if match:
            return match.group(1), match.end()
    elif first == "'":
        match = FLOW_SINGLE_QUOTED.match(text, position)
        if match:
            return match.group(1).replace("''", "'"), match.end()
    else:
        match = FLOW_PLAIN.match(text, position)
        if match:
            return plain_scalar(match.group()), match.end()
    raise _NotInSubset(text)


def read_block_yaml(text: str) -> tuple[dict[Any, Any], int] | None:
    """The document's value and the 0-based line of its root node, or None to use PyYAML."""
    if OUTSIDE_SUBSET.search(text):
        return None
    try:
        return _read(text)
    except (_NotInSubset, ValueError, OverflowError):
        return None


def _read(text: str) -> tuple[dict[Any, Any], int] | None:
    root: dict[Any, Any] = {}
    first_line = -1
    # Open collections, innermost last: (column of their keys or dashes, the collection).
    stack: list[tuple[int, Any]] = [(0, root)]
    # A "key:" whose value is on the following lines: (mapping, key, column of the key).
    pending: tuple[dict[Any, Any], object, int] | None = None
    for number, line in enumerate(text.split("\n")):
        match = LINE.fullmatch(line)
        if match is None:
            return None
        spaces, dash, key, plain, other = match.groups()
        if plain is not None:
            value: object = plain if plain[0] not in RESOLVERS else plain_scalar(plain)
        elif other and other[0] != "#":
            value = _other_value(other)
        elif key is None and not dash:
            continue  # a blank or comment line
        else:
            value = _NOTHING
        indent = len(spaces)
        if first_line < 0:
            first_line = number
            if indent:
                return None
        if pending is not None:
            mapping, pending_key, column = pending
            pending = None
            if dash and indent >= column:
                collection: Any = []
                stack.append((indent, collection))
            elif not dash and indent > column and key is not None:
                collection = {}
                stack.append((indent, collection))
            elif indent <= column:
                collection = plain_scalar("")
            else:
                return None
            mapping[pending_key] = collection
            if len(stack) > MAX_DEPTH:
                return None
        column, container = stack[-1]
        while column > indent or (column == indent and not dash and type(container) is list):
            stack.pop()
            if not stack:
                return None
            column, container = stack[-1]
        if column != indent:
            return None
        if dash:
            if type(container) is not list:
                return None
            if key is None:
                if value is _NOTHING:
                    return None  # "-" alone: the entry is on the following lines
                container.append(value)
                continue
            mapping = {}
            container.append(mapping)
            column = indent + len(dash)
            stack.append((column, mapping))
        elif key is None or type(container) is not dict:
            return None
        else:
            mapping = container
        name = key if key[0] not in RESOLVERS else plain_scalar(key)
        if value is _NOTHING:
            pending = (mapping, name, column)
        else:
            mapping[name] = value
    if first_line < 0:
        return None
    if pending is not None:
        mapping, pending_key, _ = pending
        mapping[pending_key] = plain_scalar("")
    return root, first_line
