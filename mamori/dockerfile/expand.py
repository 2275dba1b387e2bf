"""Build-argument substitution (``$VAR``, ``${VAR}``, ``${VAR:-default}``…) as BuildKit does it.

A Dockerfile is judged as a build without ``--build-arg`` would run it: an ``ARG`` with a
default has that value, one without is unset. What a build argument without a default decides
cannot be judged, so :class:`Expansion` names the unset variables the text depended on and the
rules say so instead of guessing.

Forms: ``$NAME``, ``${NAME}``, ``${NAME:-word}`` / ``${NAME-word}`` (word when unset, or empty
with ``:``), ``${NAME:+word}`` / ``${NAME+word}`` (word when set), ``${NAME:?message}``; the
words nest. The escape character before ``$`` keeps it literal; single quotes keep their
contents literal and are removed, as double quotes are. Other modifiers (``#``, ``%``, ``/``)
leave the value undecided rather than half-computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mamori.dockerfile.parse import ARG_NAME_RE, DockerfileError

MAX_NESTING = 32  # ${A:-${B:-…}} levels; BuildKit has no limit, but no real file comes near
# Values by name; None: declared without a value (an ARG without default), unset at build time.
Variables = Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class Expansion:
    text: str
    unset: tuple[str, ...] = ()
    """Variables the result depended on that have no value without ``--build-arg``."""

    @property
    def decided(self) -> bool:
        return not self.unset


def expand(
    text: str, variables: Variables, *, escape: str = "\\", line: int | None = None
) -> Expansion:
    """Substitute ``variables`` into ``text``; raise :class:`DockerfileError` on a malformed
    ``${``."""
    unset: list[str] = []
    result = _Expander(text, variables, escape, line, unset).run()
    return Expansion(result, tuple(dict.fromkeys(unset)))


class _Expander:
    def __init__(
        self, text: str, variables: Variables, escape: str, line: int | None, unset: list[str]
    ) -> None:
        self.text = text
        self.variables = variables
        self.escape = escape
        self.line = line
        self.unset = unset
        self.position = 0
        self.depth = 0

    def run(self, stop: str | None = None) -> str:
        """Expand up to ``stop`` (a closing brace, consumed) or the end."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise DockerfileError(
                f"substitutions nested too deeply in {self.text[:60]!r}", self.line
            )
        try:
            return self._run(stop)
        finally:
            self.depth -= 1

    def _run(self, stop: str | None) -> str:
        pieces: list[str] = []
        quote: str | None = None
        text = self.text
        while self.position < len(text):
            character = text[self.position]
            self.position += 1
            if stop is not None and quote is None and character == stop:
                return "".join(pieces)
            if character == self.escape and quote != "'" and self.position < len(text):
                pieces.append(text[self.position])
                self.position += 1
            elif quote is None and character in "\"'":
                quote = character
            elif character == quote:
                quote = None
            elif character == "$" and quote != "'":
                pieces.append(self._variable())
            else:
                pieces.append(character)
        if stop is not None:
            raise DockerfileError(f"missing '}}' in {text[:60]!r}", self.line)
        if quote is not None:
            raise DockerfileError(f"unterminated {quote} quote in {text[:60]!r}", self.line)
        return "".join(pieces)

    def _variable(self) -> str:
        text = self.text
        if text.startswith("{", self.position):
            self.position += 1
            return self._braced()
        match = ARG_NAME_RE.match(text, self.position)
        if match is None:
            return "$"
        self.position = match.end()
        return self._value(match.group())

    def _value(self, name: str) -> str:
        value = self.variables.get(name)
        if value is None:
            self.unset.append(name)
            return ""
        return value

    def _braced(self) -> str:
        text = self.text
        match = ARG_NAME_RE.match(text, self.position)
        if match is None:
            raise DockerfileError(f"invalid substitution in {text[:60]!r}", self.line)
        name = match.group()
        self.position = match.end()
        if text.startswith("}", self.position):
            self.position += 1
            return self._value(name)
        if self.position >= len(text):
            raise DockerfileError(f"missing '}}' in {text[:60]!r}", self.line)
        colon = text.startswith(":", self.position)
        if colon:
            self.position += 1
        operator = text[self.position : self.position + 1]
        if operator not in ("-", "+", "?"):
            if colon or operator not in ("#", "%", "/"):
                raise DockerfileError(f"unsupported substitution in {text[:60]!r}", self.line)
            self.position += 1
            self.run(stop="}")
            self.unset.append(name)  # a pattern modifier: left undecided
            return ""
        self.position += 1
        mark = len(self.unset)
        word = self.run(stop="}")
        word_unset = self.unset[mark:]
        del self.unset[mark:]
        value = self.variables.get(name)
        present = value is not None and (value != "" or not colon)
        if operator == "-":
            if present:
                return value or ""
            self.unset.extend(word_unset)
            return word
        if operator == "+":
            if present:
                self.unset.extend(word_unset)
                return word
            return ""
        if not present:  # "?": the build would stop here
            self.unset.append(name)
            return ""
        return value or ""
