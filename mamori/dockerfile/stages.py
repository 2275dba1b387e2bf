"""A parsed Dockerfile's build stages: what each is built on, and which images are pulled.

``FROM`` is resolved with the build arguments declared before the first ``FROM`` (the only
ones a ``FROM`` sees), with their defaults. A ``FROM`` naming an earlier stage
(``FROM build``, stage names being case-insensitive) builds on that stage and pulls nothing;
``scratch`` pulls nothing either; ``COPY --from=<image>`` pulls an image as ``FROM`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from mamori.dockerfile.expand import Expansion, Variables, expand
from mamori.dockerfile.parse import DockerfileError, Instruction, parse_text

SCRATCH = "scratch"
STAGE_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]*")
# Set by BuildKit for every FROM; their values depend on the machine, so they stay undecided.
PLATFORM_ARGS = frozenset(
    {
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
    }
)


@dataclass(frozen=True, slots=True)
class ImageUse:
    """An image the build pulls: where it is written, and what it resolves to.

    ``resolved`` is the text after substitution; ``unset`` names the build arguments without
    default it depended on (then ``resolved`` is not what a real build pulls).
    """

    instruction: Instruction
    stage: Stage
    written: str
    expansion: Expansion

    @property
    def resolved(self) -> str:
        return self.expansion.text

    @property
    def field(self) -> str:
        if self.instruction.keyword == "FROM":
            return "FROM"
        return f"{self.instruction.keyword} --from"


@dataclass(frozen=True, slots=True)
class Stage:
    """One ``FROM`` and the instructions up to the next one."""

    index: int
    name: str | None
    line: int
    base: Expansion
    """The ``FROM`` image after substitution."""
    written: str
    """The ``FROM`` image as written."""
    parent: int | None
    """The index of the stage this one is built on (``FROM build``), or None."""
    instruction: Instruction
    instructions: tuple[Instruction, ...] = field(default=())

    @property
    def label(self) -> str:
        """How findings name the stage: its name, or ``stage N``."""
        return self.name if self.name is not None else f"stage {self.index}"

    @property
    def scratch(self) -> bool:
        return self.parent is None and self.base.text.lower() == SCRATCH


@dataclass(frozen=True, slots=True)
class Dockerfile:
    escape: str
    global_args: Mapping[str, str | None]
    stages: tuple[Stage, ...]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def chain(self, stage: Stage) -> Iterator[Stage]:
        """``stage``, then the stage it is built on, and so on back to an image."""
        current: Stage | None = stage
        while current is not None:
            yield current
            current = None if current.parent is None else self.stages[current.parent]

    def pulled_images(self) -> Iterator[ImageUse]:
        """Every image the build pulls from a registry, in file order."""
        for stage in self.stages:
            if stage.parent is None and not stage.scratch:
                yield ImageUse(stage.instruction, stage, stage.written, stage.base)
            for instruction in stage.instructions:
                source = instruction.flag("from") if instruction.keyword == "COPY" else None
                if not source:
                    continue
                expansion = expand(
                    source, self.global_args, escape=self.escape, line=instruction.line
                )
                if self.stage_reference(expansion.text, before=stage.index) is None and (
                    expansion.text.lower() != SCRATCH
                ):
                    yield ImageUse(instruction, stage, source, expansion)

    def stage_reference(self, text: str, *, before: int) -> int | None:
        """The index of the earlier stage ``text`` names (by name, or by number for
        ``COPY --from``), or None."""
        if text.isdigit():
            number = int(text)
            return number if number < before else None
        lowered = text.lower()
        for stage in self.stages[:before]:
            if stage.name == lowered:
                return stage.index
        return None


def parse_dockerfile(text: str) -> Dockerfile:
    """Parse ``text`` into stages; raise :class:`DockerfileError` on what BuildKit refuses."""
    parsed = parse_text(text)
    escape = parsed.escape
    global_args: dict[str, str | None] = dict.fromkeys(PLATFORM_ARGS)
    stages: list[Stage] = []
    names: dict[str, int] = {}
    body: list[Instruction] = []
    for instruction in parsed.instructions:
        if instruction.keyword == "FROM":
            if stages:
                stages[-1] = _with_body(stages[-1], body)
            body = []
            stage = _stage(instruction, len(stages), global_args, names, escape)
            if stage.name is not None:
                names[stage.name] = stage.index
            stages.append(stage)
        elif not stages:
            if instruction.keyword != "ARG":
                raise DockerfileError(
                    f"{instruction.keyword} before the first FROM: only ARG may come before it",
                    instruction.line,
                )
            for name, default in instruction.pairs:
                value = None
                if default is not None:
                    value = expand(default, global_args, escape=escape, line=instruction.line).text
                global_args[name] = value
        else:
            body.append(instruction)
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction")
    stages[-1] = _with_body(stages[-1], body)
    return Dockerfile(escape, global_args, tuple(stages))


def _with_body(stage: Stage, body: list[Instruction]) -> Stage:
    return Stage(
        index=stage.index,
        name=stage.name,
        line=stage.line,
        base=stage.base,
        written=stage.written,
        parent=stage.parent,
        instruction=stage.instruction,
        instructions=tuple(body),
    )


def _stage(
    instruction: Instruction,
    index: int,
    global_args: Variables,
    names: Mapping[str, int],
    escape: str,
) -> Stage:
    words = instruction.arguments.split()
    line = instruction.line
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise DockerfileError("FROM takes an image and an optional 'AS name'", line)
    name: str | None = None
    if len(words) == 3:
        name = words[2].lower()
        if not STAGE_NAME_RE.fullmatch(name):
            raise DockerfileError(
                f"invalid stage name {words[2][:40]!r}: a letter, then letters, digits, "
                "'-', '_' or '.'",
                line,
            )
        if name in names:
            raise DockerfileError(f"the stage name {name!r} is used twice", line)
    base = expand(words[0], global_args, escape=escape, line=line)
    parent = names.get(base.text.lower()) if base.decided else None
    if base.decided and not base.text:
        raise DockerfileError(f"FROM {words[0][:60]} names no image", line)
    return Stage(index, name, line, base, words[0], parent, instruction)
