"""dockerfile-runtime-install: nothing is installed when the container starts.

Spec: the final image's ``CMD`` and ``ENTRYPOINT`` (the last of each in the final stage or the
stages it is built on), and the scripts they run that the Dockerfile copies from the build
context (read from next to the Dockerfile, bounded in size), run no package manager install
(``apt-get install``, ``apk add``, ``yum``/``dnf install``, ``pip install``, ``npm install``,
``gem install``…). Installing at start-up needs root, the network and a writable root
filesystem — what a restricted pod does not have — and runs unreviewed, unscanned software.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from mamori.dockerfile.parse import Instruction, split_words
from mamori.dockerfile.rules.registry import BuildContext, DockerfileFinding, rule
from mamori.dockerfile.stages import Dockerfile, Stage
from mamori.rules.registry import RuleSettings

_OPTIONS = r"(?:\s+-\S+)*\s+"
INSTALL_RE = re.compile(
    r"(?<![\w-])(?:"
    rf"(?:apt-get|apt|aptitude){_OPTIONS}install"
    rf"|(?:yum|dnf|microdnf|tdnf|zypper){_OPTIONS}(?:install|in)"
    rf"|apk{_OPTIONS}add"
    rf"|pip[0-9.]*{_OPTIONS}install"
    rf"|python[0-9.]*\s+-m\s+pip{_OPTIONS}install"
    rf"|(?:npm|pnpm){_OPTIONS}(?:install|i|ci|add)"
    rf"|yarn{_OPTIONS}(?:global\s+)?add"
    rf"|(?:gem|conda|cargo|go){_OPTIONS}install"
    r")(?![\w-])"
)
SCRIPT_SUFFIXES = (".sh", ".bash", ".py", ".rb", ".pl")


def install_in(text: str) -> str | None:
    """The first package-manager install command in ``text`` (comment lines aside), or None."""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = INSTALL_RE.search(line)
        if match is not None:
            return " ".join(match.group().split())
    return None


@rule(
    rule_id="dockerfile-runtime-install",
    summary="CMD and ENTRYPOINT (and the scripts they run) install no packages",
)
def check_runtime_install(
    dockerfile: Dockerfile, settings: RuleSettings, context: BuildContext
) -> list[DockerfileFinding]:
    chain = list(dockerfile.chain(dockerfile.final))
    findings: list[DockerfileFinding] = []
    for instruction, stage in _start_commands(chain):
        command = instruction.command
        found = install_in(command)
        where = f"{instruction.keyword}"
        if found is None:
            for word in _words(instruction, dockerfile.escape):
                script = _read_script(word, chain, context)
                if script is None:
                    continue
                path, text = script
                found = install_in(text)
                if found is not None:
                    where = f"{instruction.keyword} runs {path}, which"
                    break
        if found is None:
            continue
        findings.append(
            DockerfileFinding(
                line=instruction.line,
                field=instruction.keyword,
                stage=stage.label,
                message=f"{where} installs packages when the container starts ({found!r}): "
                "that needs root, the network and a writable root filesystem, and runs software "
                "nobody reviewed or scanned; install it in a RUN step of the build instead",
            )
        )
    return findings


def _start_commands(chain: list[Stage]) -> Iterator[tuple[Instruction, Stage]]:
    """The ``ENTRYPOINT`` and ``CMD`` in effect for the final image."""
    for keyword in ("ENTRYPOINT", "CMD"):
        for stage in chain:  # the final stage first: its own settings win
            last = [i for i in stage.instructions if i.keyword == keyword]
            if last:
                yield last[-1], stage
                break


def _words(instruction: Instruction, escape: str) -> list[str]:
    if instruction.exec_form is not None:
        return list(instruction.exec_form)
    try:
        return split_words(instruction.arguments, escape=escape, line=instruction.line)
    except ValueError:
        return instruction.arguments.split()


def _read_script(word: str, chain: list[Stage], context: BuildContext) -> tuple[str, str] | None:
    """The build-context file ``word`` runs, found through the COPY/ADD that put it in the image
    (else by its name next to the Dockerfile), with its text; None when there is none."""
    if word.startswith("-") or not ("/" in word or word.endswith(SCRIPT_SUFFIXES)):
        return None
    for candidate in [*_copied_from(word, chain), posixpath.basename(word)]:
        text = context.read(candidate)
        if text is not None:
            return candidate, text
    return None


def _copied_from(target: str, chain: list[Stage]) -> Iterator[str]:
    name = posixpath.basename(target)
    for stage in chain:
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD") or instruction.flag("from") is not None:
                continue
            words = list(instruction.exec_form or instruction.arguments.split())
            if len(words) < 2:
                continue
            destination = words[-1]
            for source in words[:-1]:
                if source.startswith("<<") or "://" in source:
                    continue
                if posixpath.basename(source.rstrip("/")) == name:
                    yield source
                elif target.startswith(destination.rstrip("/") + "/"):
                    yield posixpath.join(source, target[len(destination.rstrip("/")) + 1 :])
