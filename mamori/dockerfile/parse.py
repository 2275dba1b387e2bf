"""Dockerfile text → instructions with their line numbers, read the way BuildKit reads them.

What is read, following the Dockerfile reference:

- Parser directives (``# escape=``, ``# syntax=``, ``# check=``) at the very top, before any
  comment, blank line or instruction. ``escape`` sets the line-continuation character (``\\``
  or a backtick, as on Windows, where ``\\`` is a path separator).
- One instruction per logical line: a line ending in the escape character (trailing blanks
  allowed) continues on the next; comment lines and blank lines inside a continuation are
  dropped, as BuildKit drops them.
- Heredocs for ``RUN``, ``COPY`` and ``ADD`` (``<<EOF``, ``<<-EOF`` strips leading tabs,
  ``<<"EOF"``/``<<'EOF'``): their bodies are the lines after the instruction, up to the
  delimiter alone on a line.
- Leading ``--name=value`` flags, exec (JSON array) or shell form, ``ENV``/``ARG``/``LABEL``
  pairs with their quotes removed, and the instruction an ``ONBUILD`` triggers.

Anything BuildKit refuses (an unknown instruction, a missing argument, an unterminated quote or
heredoc, an invalid directive) raises :class:`DockerfileError` with the line, never anything
else: the text comes from users.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_ESCAPE = "\\"
ESCAPES = ("\\", "`")
KEYWORDS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
EXEC_FORM_KEYWORDS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
PAIR_KEYWORDS = frozenset({"ENV", "ARG", "LABEL"})
NOT_TRIGGERS = frozenset({"ONBUILD", "FROM", "MAINTAINER"})
# `# name=value`, nothing else on the line (BuildKit's directive syntax).
DIRECTIVE_RE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*")
KNOWN_DIRECTIVES = frozenset({"escape", "syntax", "check"})
FLAG_RE = re.compile(r"--([a-zA-Z][a-zA-Z0-9-]*)(?:=(.*))?", re.DOTALL)
# `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, `<<robots.txt` (COPY names files so);
# not `<<<` (a here-string) nor `1<<2` (arithmetic).
HEREDOC_RE = re.compile(r"(?<!<)<<(?!<)(-?)(\"|'|)([A-Za-z_][A-Za-z0-9_.-]*)\2")
ARG_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BLANKS = " \t\r"


class DockerfileError(ValueError):
    """Text BuildKit would refuse; ``line`` (1-based) is where, when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class Heredoc:
    """One here-document: its body as the build sees it (tabs already stripped for ``<<-``)."""

    delimiter: str
    body: str
    line: int
    """The line of the instruction that opens it."""
    quoted: bool
    """A quoted delimiter (``<<"EOF"``): the body is taken literally, without expansion."""


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: upper-case ``keyword``, its flags, and its arguments in both readings.

    ``arguments`` is the text after the flags, continuations joined; ``exec_form`` holds the
    JSON array's strings when the arguments are one (``CMD ["mamori", "--help"]``), else None.
    ``pairs`` holds ``ENV``/``ARG``/``LABEL`` names and values, quotes removed (``ARG NAME``
    without a default has the value None). ``trigger`` is what an ``ONBUILD`` runs later.
    """

    keyword: str
    line: int
    end_line: int
    arguments: str
    flags: tuple[tuple[str, str | None], ...] = ()
    exec_form: tuple[str, ...] | None = None
    pairs: tuple[tuple[str, str | None], ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    trigger: Instruction | None = None

    def flag(self, name: str) -> str | None:
        """The value of the last ``--name=value`` flag (``""`` for a bare ``--name``)."""
        value: str | None = None
        for flag_name, flag_value in self.flags:
            if flag_name == name:
                value = "" if flag_value is None else flag_value
        return value

    @property
    def command(self) -> str:
        """What runs, as one string: the exec form's words joined, or the shell form's text,
        followed by the heredoc bodies (``RUN <<EOF`` runs its body)."""
        text = " ".join(self.exec_form) if self.exec_form is not None else self.arguments
        return "\n".join([text, *(heredoc.body for heredoc in self.heredocs)])


@dataclass(frozen=True, slots=True)
class ParsedText:
    """A Dockerfile's directives and instructions, in order."""

    escape: str
    directives: tuple[tuple[str, str], ...]
    instructions: tuple[Instruction, ...]


def parse_text(text: str) -> ParsedText:
    """Read every instruction of ``text``; raise :class:`DockerfileError` on what BuildKit
    refuses."""
    lines = [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]
    directives, first = _read_directives(lines)
    escape = dict(directives).get("escape", DEFAULT_ESCAPE)
    return ParsedText(escape, directives, tuple(_instructions(lines, first, escape)))


def _read_directives(lines: list[str]) -> tuple[tuple[tuple[str, str], ...], int]:
    """The parser directives at the top, and the index of the first line after them."""
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = DIRECTIVE_RE.fullmatch(line.strip(BLANKS))
        if match is None:
            return tuple(found.items()), index
        name, value = match.group(1).lower(), match.group(2)
        if name not in KNOWN_DIRECTIVES:
            return tuple(found.items()), index  # an ordinary comment that looks like one
        if name in found:
            raise DockerfileError(f"the parser directive {name!r} is set twice", index + 1)
        if name == "escape" and value not in ESCAPES:
            raise DockerfileError(
                f"invalid escape character {value!r}: the escape directive takes \\ or `",
                index + 1,
            )
        found[name] = value
    return tuple(found.items()), len(lines)


def _is_skipped(line: str) -> bool:
    stripped = line.strip(BLANKS)
    return not stripped or stripped.startswith("#")


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """The line without its trailing escape character, and whether it continues."""
    stripped = line.rstrip(BLANKS)
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def _instructions(lines: list[str], index: int, escape: str) -> Iterator[Instruction]:
    while index < len(lines):
        if _is_skipped(lines[index]):
            index += 1
            continue
        start = index
        parts: list[str] = []
        while True:
            part, more = _continues(lines[index], escape)
            parts.append(part)
            if not more:
                break
            index += 1
            while index < len(lines) and _is_skipped(lines[index]):
                index += 1
            if index >= len(lines):
                index -= 1
                break
        index += 1
        logical = "".join(parts).strip(BLANKS)
        keyword, _, rest = logical.partition(" ")
        if "\t" in keyword:
            keyword, _, tail = keyword.partition("\t")
            rest = f"{tail} {rest}"
        heredocs: tuple[Heredoc, ...] = ()
        if keyword.upper() in HEREDOC_KEYWORDS and "<<" in rest:
            heredocs, index = _read_heredocs(rest, lines, index, start + 1)
        yield build_instruction(
            keyword, rest, line=start + 1, end_line=index, escape=escape, heredocs=heredocs
        )


def _read_heredocs(
    text: str, lines: list[str], index: int, line: int
) -> tuple[tuple[Heredoc, ...], int]:
    """The bodies of the heredocs ``text`` opens, read from ``lines[index:]``, in order."""
    found: list[Heredoc] = []
    quoted = _single_quoted(text)
    for match in HEREDOC_RE.finditer(text):
        if match.start() in quoted:
            continue  # echo '<<EOF' opens nothing
        strip_tabs, quote, delimiter = match.group(1) == "-", match.group(2), match.group(3)
        body: list[str] = []
        while True:
            if index >= len(lines):
                raise DockerfileError(
                    f"the heredoc <<{delimiter} is never closed: no line {delimiter!r} follows",
                    line,
                )
            current = lines[index].lstrip("\t") if strip_tabs else lines[index]
            index += 1
            if current == delimiter:
                break
            body.append(current)
        text_body = "\n".join(body) + ("\n" if body else "")
        found.append(Heredoc(delimiter, text_body, line, quoted=bool(quote)))
    return tuple(found), index


def _single_quoted(text: str) -> set[int]:
    """Positions inside single-quoted strings of ``text``; a quoted heredoc delimiter
    (``<<'EOF'``) is not a string."""
    positions: set[int] = set()
    position = 0
    while True:
        start = text.find("'", position)
        if start < 0:
            return positions
        end = text.find("'", start + 1)
        if end < 0:
            return positions
        if not text[:start].rstrip("-").endswith("<<"):
            positions.update(range(start, end + 1))
        position = end + 1


def build_instruction(
    keyword: str,
    rest: str,
    *,
    line: int,
    end_line: int,
    escape: str,
    heredocs: tuple[Heredoc, ...] = (),
) -> Instruction:
    """One instruction from its keyword and the rest of its logical line."""
    upper = keyword.upper()
    if upper not in KEYWORDS:
        shown = keyword if len(keyword) <= 40 else keyword[:37] + "..."
        raise DockerfileError(f"unknown instruction {shown!r}", line)
    rest = rest.strip(BLANKS)
    if upper == "ONBUILD":
        return _onbuild(rest, line=line, end_line=end_line, escape=escape)
    flags, arguments = _split_flags(rest) if upper != "ENV" else ((), rest)
    if not arguments and not heredocs:
        raise DockerfileError(f"{upper} requires an argument", line)
    exec_form = _exec_form(arguments) if upper in EXEC_FORM_KEYWORDS else None
    if upper == "SHELL" and exec_form is None:
        raise DockerfileError('SHELL requires a JSON array, such as SHELL ["/bin/sh", "-c"]', line)
    pairs: tuple[tuple[str, str | None], ...] = ()
    if upper in PAIR_KEYWORDS:
        pairs = _pairs(upper, arguments, escape=escape, line=line)
    return Instruction(
        keyword=upper,
        line=line,
        end_line=end_line,
        arguments=arguments,
        flags=flags,
        exec_form=exec_form,
        pairs=pairs,
        heredocs=heredocs,
    )


def _onbuild(rest: str, *, line: int, end_line: int, escape: str) -> Instruction:
    inner, _, inner_rest = rest.partition(" ")
    if not inner:
        raise DockerfileError("ONBUILD requires an instruction to trigger", line)
    if inner.upper() in NOT_TRIGGERS:
        raise DockerfileError(f"ONBUILD cannot trigger {inner.upper()}", line)
    trigger = build_instruction(inner, inner_rest, line=line, end_line=end_line, escape=escape)
    return Instruction("ONBUILD", line, end_line, rest, trigger=trigger)


def _split_flags(text: str) -> tuple[tuple[tuple[str, str | None], ...], str]:
    """Leading ``--name=value`` words, and the text after them."""
    flags: list[tuple[str, str | None]] = []
    while text.startswith("--"):
        word, _, remainder = text.partition(" ")
        if "\t" in word:
            word, _, tail = word.partition("\t")
            remainder = f"{tail} {remainder}"
        match = FLAG_RE.fullmatch(word)
        if match is None:
            break
        flags.append((match.group(1).lower(), match.group(2)))
        text = remainder.lstrip(BLANKS)
    return tuple(flags), text


def _exec_form(text: str) -> tuple[str, ...] | None:
    """The strings of a JSON array, or None: BuildKit takes anything else as shell form."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return tuple(value)


def _pairs(
    keyword: str, text: str, *, escape: str, line: int
) -> tuple[tuple[str, str | None], ...]:
    """``name=value`` pairs of ``ENV``, ``ARG`` and ``LABEL``, quotes removed."""
    words = split_words(text, escape=escape, line=line)
    if keyword != "ARG" and words and "=" not in words[0]:
        # The legacy form, one pair: `ENV NAME the rest of the line`.
        name, _, value = text.partition(" ")
        if not value.strip(BLANKS) and keyword == "ENV":
            raise DockerfileError(f"ENV {name} has no value: write ENV {name}=<value>", line)
        return ((unquote(name, escape=escape, line=line), unquote(value, escape, line)),)
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        name, equals, value = word.partition("=")
        if not name:
            raise DockerfileError(f"{keyword} has a value without a name: {word[:40]!r}", line)
        if keyword == "ARG":
            if not ARG_NAME_RE.fullmatch(name):
                raise DockerfileError(f"invalid ARG name {name[:40]!r}", line)
            pairs.append((name, value if equals else None))
        elif not equals:
            raise DockerfileError(f"{keyword} {name[:40]} has no value: write {name}=<value>", line)
        else:
            pairs.append((name, value))
    return tuple(pairs)


def split_words(text: str, *, escape: str, line: int) -> list[str]:
    """Words separated by blanks outside quotes, with quotes and escapes removed."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    quote: str | None = None
    position = 0
    while position < len(text):
        character = text[position]
        position += 1
        if quote is None and character in BLANKS + "\n":
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            continue
        in_word = True
        if character == escape and quote != "'" and position < len(text):
            following = text[position]
            position += 1
            if quote == '"' and following not in ('"', escape, "$"):
                current.append(character)
            current.append(following)
        elif quote is None and character in "\"'":
            quote = character
        elif character == quote:
            quote = None
        else:
            current.append(character)
    if quote is not None:
        raise DockerfileError(f"unterminated {quote} quote in {text[:60]!r}", line)
    if in_word:
        words.append("".join(current))
    return words


def unquote(text: str, escape: str, line: int) -> str:
    """One value with its quotes and escapes removed, inner blanks kept."""
    stripped = text.strip(BLANKS)
    if not stripped:
        return ""
    return " ".join(split_words(stripped, escape=escape, line=line))
