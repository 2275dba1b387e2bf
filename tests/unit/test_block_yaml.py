"""The fast block-YAML reader: whatever it accepts, it reads exactly as PyYAML does.

Soundness is the property that matters (a document read differently would be judged
differently from what kubectl applies), so most tests are differential: random documents, in the
styles people and tools write, through both readers; the value (types included, via ``repr``)
and the first line must agree whenever the fast reader does not decline.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

from mamori.block_yaml import (
    RESOLVERS,
    WORD_STARTS,
    _NotInSubset,
    plain_scalar,
    read_block_yaml,
)

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CHECKS = settings(
    max_examples=400,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def pyyaml(text: str) -> tuple[object, int] | None:
    """PyYAML's reading of one document: its value and its root node's first line."""
    loader = LOADER(text)
    try:
        node = loader.get_single_node()
        return (
            (None, -1) if node is None else (loader.construct_document(node), node.start_mark.line)
        )
    finally:
        loader.dispose()


def same(fast: object, slow: object) -> bool:
    """Equal values of equal types, in the same order (``repr``), NaN included."""
    return repr(fast) == repr(slow)


def test_implicit_types_are_pyyamls() -> None:
    """The resolver table is PyYAML's, character by character; a PyYAML upgrade that changes
    it fails here instead of reading a manifest differently."""

    def normalized(table: Any) -> dict[str, list[tuple[str, str, int]]]:
        return {
            first: [(tag, re.sub(r"\s", "", p.pattern), p.flags) for tag, p in entries]
            for first, entries in table.items()
        }

    assert normalized(RESOLVERS) == normalized(yaml.SafeLoader.yaml_implicit_resolvers)


def test_words_stand_for_the_bool_and_null_patterns() -> None:
    """For these first characters only bool and null apply, and they match exactly WORDS."""
    for first in WORD_STARTS:
        assert [tag for tag, _ in RESOLVERS[first]] in (
            ["tag:yaml.org,2002:bool"],
            ["tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"],
            ["tag:yaml.org,2002:null"],
        )
    spellings = {
        variant
        for word in ("yes", "no", "true", "false", "on", "off", "null", "y", "n", "~", "nul")
        for variant in {word, word.upper(), word.capitalize(), word.swapcase(), word + "s"}
    }
    for text in spellings:
        assert same(plain_scalar(text), pyyaml_scalar(text)), text


SCALAR_ALPHABET = "0123456789_:.-+eExXbBoOaAfFnNiItTyYsSlLuU~ "
SPECIAL_SCALARS = [
    "", "~", "null", "Null", "NULL", "nULL", "yes", "No", "ON", "off", "y", "n", "true", "False",
    "0", "-0", "+0", "007", "08", "0o17", "0x1F", "0X1F", "0b101", "-0b1_1", "1_000", "1:30",
    "-1:30:00", "190:20:30.15", "1.5", "-1.5", "+.5", ".5", "1.", "1e3", "1.0e+3", "6.8523015e+5",
    ".inf", "-.Inf", "+.INF", ".nan", ".NaN", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "<<",
    "=", "1:60", "0x_", "0b", "+", "-", ".", "9" * 5000, "1" + "_" * 3 + "2",
]  # fmt: skip


def pyyaml_scalar(text: str) -> object:
    tag = LOADER("").resolve(ScalarNode, text, (True, False))
    return SafeConstructor().construct_object(ScalarNode(tag, text))


@given(st.one_of(st.sampled_from(SPECIAL_SCALARS), st.text(SCALAR_ALPHABET, max_size=12)))
@CHECKS
def test_plain_scalars_are_typed_as_pyyaml_types_them(text: str) -> None:
    try:
        expected: object = pyyaml_scalar(text)
    except Exception as error:  # whatever PyYAML refuses, the fast reader must too
        expected = error
    try:
        got: object = plain_scalar(text)
    except Exception:  # declining (or failing) sends the document to PyYAML
        return
    assert not isinstance(expected, Exception), (text, got, expected)
    assert same(got, expected), (text, got, expected)
    if isinstance(got, float) and math.isnan(got):
        assert isinstance(expected, float)
        assert math.copysign(1, got) == math.copysign(1, expected)


# Documents as people, kubectl and `helm template` write them, with the variations that matter.
KEYS = st.sampled_from(
    ["name", "image", "ports", "spec", "a", "x-y", "app.kubernetes.io/name", "on", "yes", "null",
     "1", "0x1", "Y", "n", "true", "_k", "k8s", "a.b", "v1", "2001-12-14", "1:2", ".5"]
)  # fmt: skip
VALUE_TEXTS = st.one_of(
    st.sampled_from(SPECIAL_SCALARS[:-2]),
    st.sampled_from(
        ["nginx:1.25", "http://x:80/y", "a b", "a  b", "a#b", "a #b", "a: b", "a:", "*/15 * * *",
         "it's", '"q"', "'q'", "'it''s'", '"a # b"', '""', "''", '"a\\"b"', "{}", "[]", "{a: 1}",
         "[1, 2]", "- x", "-1", "-x", "&a x", "*a", "!!str 1", "!x y", "|", ">", "? x", "%x",
         "@x", "`x", "(x)", "~x", "+x", "/x", "_x", ".x", "x,y", "x]", "x}", "a\\b", "#c",
         '["ALL"]', "{type: RuntimeDefault}", "[a, 'b', \"c\"]", "{a: b, c: d}", "[a b, c]",
         "[a,b]", "{a: 'x, y'}", "[ ]", "{ }", "[a,]", "{a:b}", "[-1]", "[a: b]", "{a: [1]}",
         "[[1]]", "[yes, 0x1F, ~, 1:30]", "{on: off}", "[a] # c", "{a: b}x", "[a #b]"]
    ),
    st.text("abc:#- '\"019.", min_size=1, max_size=8),
)  # fmt: skip


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A random block-YAML mapping, written with random (valid and invalid) layout choices."""
    lines: list[str] = []

    def mapping(indent: int, depth: int, *, first_prefix: str | None = None) -> None:
        for position in range(draw(st.integers(1, 4))):
            prefix = first_prefix if position == 0 and first_prefix is not None else " " * indent
            key = draw(KEYS)
            kind = draw(st.sampled_from(["scalar", "scalar", "map", "seq", "empty"]))
            if depth > 3 and kind in ("map", "seq"):
                kind = "scalar"
            if kind == "scalar":
                comment = draw(st.sampled_from(["", "", " # note", "  ", " #"]))
                lines.append(f"{prefix}{key}: {draw(VALUE_TEXTS)}{comment}")
            elif kind == "empty":
                lines.append(f"{prefix}{key}:" + draw(st.sampled_from(["", " ", " # c"])))
            elif kind == "map":
                lines.append(f"{prefix}{key}:")
                mapping(indent + draw(st.sampled_from([2, 2, 4, 1])), depth + 1)
            else:
                lines.append(f"{prefix}{key}:")
                sequence(indent + draw(st.sampled_from([0, 0, 2, 4])), depth + 1)
            if draw(st.integers(0, 9)) == 0:
                lines.append(draw(st.sampled_from(["", "  ", "# c", "    # deep comment", " x"])))

    def sequence(indent: int, depth: int) -> None:
        for _ in range(draw(st.integers(1, 3))):
            dash = " " * indent + draw(st.sampled_from(["- ", "- ", "-  ", "-"]))
            if draw(st.booleans()) and depth <= 3:
                mapping(len(dash), depth + 1, first_prefix=dash)
            else:
                lines.append(dash + draw(VALUE_TEXTS))

    for _ in range(draw(st.integers(0, 2))):
        lines.append(draw(st.sampled_from(["# header", "", "   "])))
    mapping(draw(st.sampled_from([0, 0, 0, 1])), 0)
    ending = draw(st.sampled_from(["\n", "\n", "", "\n\n", "\n# end\n"]))
    return "\n".join(lines) + ending


@given(documents())
@CHECKS
def test_what_the_fast_reader_accepts_pyyaml_reads_the_same(text: str) -> None:
    fast = read_block_yaml(text)
    if fast is None:
        return
    slow = pyyaml(text)  # must not raise: the fast reader accepted a document PyYAML refuses
    assert slow is not None
    assert same(fast[0], slow[0]), text
    assert fast[1] == slow[1], text


CLEAN_VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-./:_ ", min_size=1, max_size=20).map(str.strip),
)


def written_plain(key: str) -> bool:
    """Whether PyYAML writes ``key`` unquoted: a string no implicit type claims."""
    try:
        return key[0].isalnum() and plain_scalar(key) == key
    except ValueError:  # "0x_" is an int to the resolver, and no int to the constructor
        return False
    except _NotInSubset:  # "2001-12-14": a date, which only PyYAML builds
        return False


KUBE_KEYS = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789-./_", min_size=1, max_size=12).filter(
    written_plain
)
TREES = st.recursive(
    CLEAN_VALUES,
    lambda children: st.one_of(  # lists of lists ("- - x") are left to PyYAML
        st.lists(
            st.one_of(CLEAN_VALUES, st.dictionaries(KUBE_KEYS, children, max_size=3)),
            max_size=4,
        ),
        st.dictionaries(KUBE_KEYS, children, min_size=1, max_size=4),
    ),
    max_leaves=30,
)


@given(st.dictionaries(KUBE_KEYS, TREES, min_size=1, max_size=5), st.booleans())
@CHECKS
def test_yaml_that_pyyaml_writes_is_read_fast_and_the_same(
    value: dict[str, Any], indentless: bool
) -> None:
    """The common case is taken (the fast reader is not declining everything) and agrees."""
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=10**6)
    if not indentless:
        text = yaml.safe_dump(
            value, default_flow_style=False, sort_keys=False, width=10**6, indent=4
        )
    fast = read_block_yaml(text)
    assert fast is not None, text
    assert same(fast[0], pyyaml(text)[0]), text  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: &x 1\nb: *x\n", id="anchor-and-alias"),
        pytest.param("a: !!str 1\n", id="tag"),
        pytest.param("a: |\n  text\n", id="block-scalar"),
        pytest.param("a: [1,\n  2]\n", id="flow-collection-over-two-lines"),
        pytest.param("a: [b: c]\n", id="mapping-inside-a-flow-sequence"),
        pytest.param("a: {b: }\n", id="flow-entry-without-a-value"),
        pytest.param("a: [1, 2,]\n", id="flow-trailing-comma"),
        pytest.param("a: one\n  two\n", id="multi-line-plain-scalar"),
        pytest.param("a:\tb\n", id="tab"),
        pytest.param("a: caf\u00e9\n", id="non-ascii"),
        pytest.param("a: b\r\n", id="crlf"),
        pytest.param("a: 2001-12-14\n", id="timestamp"),
        pytest.param("<<: {a: 1}\n", id="merge-key"),
        pytest.param("a: b: c\n", id="mapping-in-a-plain-scalar"),
        pytest.param('a: "x\\ty"\n', id="escape"),
        pytest.param("- a\n", id="root-sequence"),
        pytest.param("  a: b\n", id="indented-root"),
        pytest.param("%YAML 1.1\n---\na: b\n", id="directive"),
        pytest.param("a: b\n...\n", id="document-end"),
        pytest.param("? a\n: b\n", id="complex-key"),
        pytest.param("# only a comment\n", id="no-document"),
        pytest.param("a: 1" + "0" * 5000 + "\n", id="integer-past-the-digit-limit"),
    ],
)
def test_other_yaml_is_left_to_pyyaml(text: str) -> None:
    assert read_block_yaml(text) is None


def test_a_kubernetes_manifest_is_read_fast_with_its_line() -> None:
    text = """# deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web  # the name
  labels:
    app.kubernetes.io/name: web
spec:
  replicas: 3
  template:
    spec:
      hostNetwork: yes
      containers:
      - name: app
        image: "nginx:1.25"
        ports:
        -   containerPort: 0x1F90
            protocol: TCP
        args: ['--flag', 'it''s']
        env: []
        resources: {}
        securityContext:
          runAsUser: 1_000
          runAsNonRoot: ~
"""
    fast = read_block_yaml(
        text.replace("args: ['--flag', 'it''s']\n", "args:\n        - 'it''s'\n")
    )
    assert fast is not None
    value, line = fast
    assert line == 1
    container = value["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["args"] == ["it's"]
    assert value["spec"]["template"]["spec"]["hostNetwork"] is True
    assert container["securityContext"] == {"runAsUser": 1000, "runAsNonRoot": None}


FLOW_SCALARS = st.sampled_from(
    ["a", "b c", "ALL", "yes", "1", "-1", "0x1F", '"q, r"', "'s'", "''", "~", "null", "a-b",
     "x.y/z", "1:30", "2001-12-14", "a:b", "a #b", "?a", "&a", "*a", "!t", "[1]", "", "a  b"]
)  # fmt: skip
SEPARATORS = st.sampled_from([", ", ",", " , ", " ,", ",  ", " "])
NESTED_FLOWS = st.sampled_from(
    ["[ALL]", "[]", "{}", "{a: 1}", "[a, [b]]", "{a: {b: c}}", "[a,]", "{a: }", "[ x ]"]
)


@st.composite
def flow_collections(draw: st.DrawFn) -> str:
    """One-line flow lists and maps, mostly well formed, sometimes with a flaw."""
    items = draw(st.lists(st.one_of(FLOW_SCALARS, NESTED_FLOWS), max_size=4))
    if draw(st.booleans()):
        items = [f"{draw(FLOW_SCALARS)}{draw(st.sampled_from([': ', ':', ' : ']))}{item}"
                 for item in items]  # fmt: skip
        opening, closing = "{", "}"
    else:
        opening, closing = "[", "]"
    inside = ""
    for position, item in enumerate(items):
        inside += (draw(SEPARATORS) if position else "") + item
    padding = draw(st.sampled_from(["", " ", "  "]))
    after = draw(st.sampled_from(["", "", " # c", "#c", " x", ","]))
    return f"{opening}{padding}{inside}{padding}{closing}{after}"


@given(flow_collections(), st.booleans())
@CHECKS
def test_flow_collections_it_accepts_read_as_pyyaml_reads_them(flow: str, in_list: bool) -> None:
    text = f"k:\n- {flow}\n" if in_list else f"k: {flow}\n"
    fast = read_block_yaml(text)
    if fast is None:
        return
    slow = pyyaml(text)
    assert slow is not None
    assert same(fast[0], slow[0]), text
