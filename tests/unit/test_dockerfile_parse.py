"""The Dockerfile parser: what BuildKit reads is read the same, what it refuses is refused with a
line, and nothing else ever escapes (random text included)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.dockerfile.expand import expand
from mamori.dockerfile.parse import DockerfileError, parse_text
from mamori.dockerfile.stages import parse_dockerfile

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "dockerfile" / "corpus"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.Dockerfile")), ids=lambda p: p.stem)
def test_the_corpus_parses(path: Path) -> None:
    dockerfile = parse_dockerfile(path.read_text(encoding="utf-8"))
    assert dockerfile.stages
    lines = path.read_text(encoding="utf-8").count("\n") + 1
    for stage in dockerfile.stages:
        for instruction in (stage.instruction, *stage.instructions):
            assert 1 <= instruction.line <= instruction.end_line <= lines


def test_the_corpus_has_a_dozen_files() -> None:
    assert len(list(CORPUS.glob("*.Dockerfile"))) >= 12


def keywords_and_lines(text: str) -> list[tuple[str, int, int]]:
    return [(i.keyword, i.line, i.end_line) for i in parse_text(text).instructions]


def test_continuations_comments_and_blank_lines_inside_them() -> None:
    text = "FROM a:1\nRUN one \\\n# a comment\n\n    two \\\n  three\nUSER 1\n"
    [from_, run, user] = parse_text(text).instructions
    assert (run.keyword, run.line, run.end_line) == ("RUN", 2, 6)
    assert run.arguments.split() == ["one", "two", "three"]
    assert (user.line, from_.line) == (7, 1)


def test_trailing_blanks_after_the_escape_still_continue() -> None:
    [_, run] = parse_text("FROM a:1\nRUN a \\   \n b\n").instructions
    assert run.arguments.split() == ["a", "b"]


def test_backtick_escape_directive() -> None:
    parsed = parse_text("# escape=`\nFROM a:1\nRUN dir C:\\ `\n  && echo done\n")
    assert parsed.escape == "`"
    assert parsed.instructions[1].arguments.split() == ["dir", "C:\\", "&&", "echo", "done"]


def test_directives_stop_at_the_first_comment_or_blank_line() -> None:
    parsed = parse_text("# a comment\n# escape=`\nFROM a:1\nRUN x \\\n y\n")
    assert parsed.escape == "\\"
    assert parsed.instructions[1].arguments.split() == ["x", "y"]


@pytest.mark.parametrize(
    ("text", "delimiter", "body"),
    [
        ("RUN <<EOF\necho hi\nEOF\n", "EOF", "echo hi\n"),
        ("RUN <<-EOT\n\techo hi\n\tEOT\n", "EOT", "echo hi\n"),
        ("RUN <<'EOF'\necho $HOME\nEOF\n", "EOF", "echo $HOME\n"),
        ('COPY <<"CONF" /etc/x\nkey = 1\nCONF\n', "CONF", "key = 1\n"),
        ("RUN python3 - <<'PY'\nprint(1 << 2)\nPY\n", "PY", "print(1 << 2)\n"),
        ("COPY <<robots.txt /srv/\nUser-agent: *\nrobots.txt\n", "robots.txt", "User-agent: *\n"),
    ],
)
def test_heredocs(text: str, delimiter: str, body: str) -> None:
    parsed = parse_text("FROM a:1\n" + text + "USER 1\n")
    [_, instruction, user] = parsed.instructions
    [heredoc] = instruction.heredocs
    assert (heredoc.delimiter, heredoc.body) == (delimiter, body)
    assert user.line == text.count("\n") + 2


@pytest.mark.parametrize(
    "text", ["RUN cat <<<'here-string'\n", "RUN echo $((1<<2))\n", "RUN echo '<<EOF'\n"]
)
def test_what_is_not_a_heredoc(text: str) -> None:
    assert parse_text("FROM a:1\n" + text).instructions[1].heredocs == ()


def test_two_heredocs_are_read_in_order() -> None:
    parsed = parse_text("FROM a:1\nCOPY <<a <<b /d/\n1\na\n2\nb\nUSER 1\n")
    assert [(h.delimiter, h.body) for h in parsed.instructions[1].heredocs] == [
        ("a", "1\n"),
        ("b", "2\n"),
    ]


def test_flags_and_forms() -> None:
    parsed = parse_text(
        "FROM --platform=$BUILDPLATFORM a:1 AS b\n"
        "RUN --mount=type=secret,id=npm --network=none npm ci\n"
        'COPY --from=b --chown=1:1 --link ["x y", "/z"]\n'
        'CMD ["app", "--flag"]\n'
        "ENTRYPOINT [not json\n"
    )
    from_, run, copy, cmd, entrypoint = parsed.instructions
    assert from_.flag("platform") == "$BUILDPLATFORM" and from_.arguments == "a:1 AS b"
    assert run.flag("mount") == "type=secret,id=npm" and run.arguments == "npm ci"
    assert (copy.flag("from"), copy.flag("chown"), copy.flag("link")) == ("b", "1:1", "")
    assert copy.exec_form == ("x y", "/z")
    assert cmd.exec_form == ("app", "--flag")
    assert entrypoint.exec_form is None and entrypoint.arguments == "[not json"


def test_env_arg_and_label_pairs() -> None:
    parsed = parse_text(
        'ARG A B=2 C="x y"\nFROM a:1\nENV LEGACY some value\nENV K=\'v 1\' L="q\\"" M=\n'
        "LABEL a.b=c\n"
    )
    assert parsed.instructions[0].pairs == (("A", None), ("B", "2"), ("C", "x y"))
    assert parsed.instructions[2].pairs == (("LEGACY", "some value"),)
    assert parsed.instructions[3].pairs == (("K", "v 1"), ("L", 'q"'), ("M", ""))
    assert parsed.instructions[4].pairs == (("a.b", "c"),)


def test_onbuild_keeps_its_trigger() -> None:
    [_, onbuild] = parse_text("FROM a:1\nONBUILD run npm ci\n").instructions
    assert onbuild.trigger is not None
    assert (onbuild.trigger.keyword, onbuild.trigger.arguments) == ("RUN", "npm ci")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("FROM a:1\nFRMO b\n", 2, "unknown instruction"),
        ("FROM a:1\nRUN\n", 2, "requires an argument"),
        ("FROM a:1\nRUN <<EOF\necho\n", 2, "never closed"),
        ('FROM a:1\nENV A="unterminated\n', 2, "unterminated"),
        ("FROM a:1\nENV A\n", 2, "has no value"),
        ("FROM a:1\nSHELL /bin/sh -c\n", 2, "JSON array"),
        ("# escape=x\nFROM a:1\n", 1, "escape"),
        ("RUN echo\nFROM a:1\n", 1, "before the first FROM"),
        ("ARG A=1\n", None, "no FROM"),
        ("FROM a:1 AS b c\n", 1, "AS name"),
        ("FROM a:1 AS 1bad\n", 1, "stage name"),
        ("FROM a:1 AS x\nFROM b:1 AS X\n", 2, "used twice"),
        ("FROM a:1\nONBUILD FROM b\n", 2, "ONBUILD cannot"),
        ("FROM ${A\n", 1, "missing '}'"),
        ("ARG A=x\nFROM ${A:-\n", 2, "missing '}'"),
        ("FROM ${A!x}\n", 1, "substitution"),
    ],
)
def test_refusals_name_the_line(text: str, line: int | None, words: str) -> None:
    with pytest.raises(DockerfileError) as raised:
        parse_dockerfile(text)
    assert words in raised.value.message
    assert raised.value.line == line


@pytest.mark.parametrize(
    ("text", "variables", "expected", "unset"),
    [
        ("$A", {"A": "1"}, "1", ()),
        ("${A}x", {"A": "1"}, "1x", ()),
        ("${A:-d}", {}, "d", ()),
        ("${A:-d}", {"A": ""}, "d", ()),
        ("${A-d}", {"A": ""}, "", ()),
        ("${A:+x}", {"A": "1"}, "x", ()),
        ("${A:+x}", {"A": None}, "", ()),
        ("${A:-${B:-z}}", {}, "z", ()),
        ("$A/b", {"A": None}, "/b", ("A",)),
        ("${A:-$B}", {}, "", ("B",)),
        ("\\$A", {"A": "1"}, "$A", ()),
        ("'$A'", {"A": "1"}, "$A", ()),
        ("$", {}, "$", ()),
        ("${A%.*}", {"A": "1.2"}, "", ("A",)),
    ],
)
def test_substitution(
    text: str, variables: dict[str, str | None], expected: str, unset: tuple[str, ...]
) -> None:
    result = expand(text, variables)
    assert (result.text, result.unset) == (expected, unset)


def test_from_uses_args_declared_before_the_first_from_only() -> None:
    dockerfile = parse_dockerfile(
        f"ARG BASE=python:3.12-slim@{DIGEST}\nARG TAG\nFROM ${{BASE}} AS build\n"
        "ARG LATER=x\nFROM build\nFROM busybox:${TAG:-1.36}\n"
    )
    build, child, busybox = dockerfile.stages
    assert build.base.text == f"python:3.12-slim@{DIGEST}" and build.parent is None
    assert child.parent == 0 and busybox.base.text == "busybox:1.36"
    assert [use.resolved for use in dockerfile.pulled_images()] == [
        f"python:3.12-slim@{DIGEST}",
        "busybox:1.36",
    ]


def test_stage_references_and_scratch_pull_nothing() -> None:
    dockerfile = parse_dockerfile(
        "FROM alpine:3.20 AS Build\nFROM scratch\nCOPY --from=BUILD /a /a\nCOPY --from=0 /b /b\n"
        "COPY --from=busybox:1.36 /bin/busybox /busybox\n"
    )
    assert [use.resolved for use in dockerfile.pulled_images()] == ["alpine:3.20", "busybox:1.36"]


ALPHABET = st.sampled_from(
    [
        *"FROMRUNCOPYADDENVARGUSERONBUILD<<EOF-'\"`\\${}:=[]#@/ \t\n\r\x00é",
        *["FROM ", "RUN <<", "\\\n", "# escape=`\n", "${", "ARG ", "COPY --from="],
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_random_text_raises_only_the_parsers_own_error(text: str) -> None:
    with contextlib.suppress(DockerfileError):
        parse_dockerfile(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_unicode_raises_only_the_parsers_own_error(text: str) -> None:
    with contextlib.suppress(DockerfileError):
        parse_dockerfile("FROM a:1\n" + text)
