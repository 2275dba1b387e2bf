"""One Dockerfile judged by every policy that applies: read, parse, run the rules, add hadolint.

The policies are those that select the namespace ``mamori check --namespace`` names (the image
is judged as if deployed there, as manifests without a namespace are); each policy's
enforcement decides what its findings do, as for pods: Enforce denies, Warn and Audit report.
Advisory findings (``dockerfile-image-tag``, ``dockerfile-small-image``, hadolint) never deny.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mamori.dockerfile.hadolint import LintResult, find_hadolint, run_hadolint
from mamori.dockerfile.parse import DockerfileError
from mamori.dockerfile.rules import DOCKERFILE_RULES, BuildContext
from mamori.dockerfile.rules.registry import no_context
from mamori.dockerfile.stages import Dockerfile, parse_dockerfile
from mamori.findings import Decision, Violation
from mamori.manifests import InputError, display_name
from mamori.policy.model import Policy

HADOLINT_PREFIX = "hadolint-"


@dataclass(frozen=True, slots=True)
class DockerfileOptions:
    """How Dockerfiles are read: size bounds, and the hadolint to run (None: none)."""

    max_bytes: int = 1024 * 1024
    max_script_bytes: int = 256 * 1024
    hadolint: Path | None = None
    hadolint_timeout: float = 30.0

    @classmethod
    def discover(cls) -> DockerfileOptions:
        """The defaults, with hadolint if it is installed."""
        return cls(hadolint=find_hadolint())


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``mamori check`` reports for one Dockerfile.

    ``lines`` holds the line of each of ``decision.violations``, then of each of
    ``decision.advice``, in order. ``notes`` say what could not be checked (hadolint failing).
    """

    source: str
    name: str
    line: int
    decision: Decision
    lines: tuple[int, ...]
    notes: tuple[str, ...] = ()


def judge_dockerfile(
    path: str, policies: Sequence[Policy], *, namespace: str, options: DockerfileOptions
) -> Verdict | InputError:
    """Read and judge the Dockerfile at ``path``; an input error when it cannot be read."""
    source = display_name(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(options.max_bytes + 1)
    except OSError as error:
        return InputError(source, f"cannot read: {error.strerror or error}")
    if len(data) > options.max_bytes:
        return InputError(
            source, f"Dockerfile is larger than {options.max_bytes} bytes, the most mamori reads"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return InputError(source, f"is not UTF-8 text (byte {error.start})", line=line)
    selecting = [policy for policy in policies if policy.selects(namespace)]
    lint: LintResult | None = None
    if options.hadolint is not None and selecting:
        lint = run_hadolint(options.hadolint, path, timeout=options.hadolint_timeout)
    context = BuildContext(ContextFiles(Path(path).parent, options.max_script_bytes).read)
    return judge_text(
        text,
        source,
        selecting,
        name=Path(path).name,
        context=context,
        lint=lint,
    )


def judge_text(
    text: str,
    source: str,
    policies: Sequence[Policy],
    *,
    name: str = "Dockerfile",
    context: BuildContext | None = None,
    lint: LintResult | None = None,
) -> Verdict | InputError:
    """Judge Dockerfile ``text`` with ``policies`` (all of them: selection is the caller's)."""
    try:
        dockerfile = parse_dockerfile(text)
        found = _findings(dockerfile, policies, context or BuildContext(no_context))
    except DockerfileError as error:
        return InputError(source, error.message, line=error.line)
    if lint is not None and policies:
        found.extend(_lint_findings(lint, dockerfile, policies[0]))
    found = sorted(set(found), key=lambda item: (item[1], item[0].sort_key()))
    violations = [(v, line) for v, line in found if not v.advisory]
    advice = [(v, line) for v, line in found if v.advisory]
    final = dockerfile.final
    return Verdict(
        source=source,
        name=final.name or name,
        line=final.line,
        decision=Decision(
            violations=tuple(v for v, _ in violations),
            advice=tuple(v for v, _ in advice),
            policies=tuple(policy.name for policy in policies),
        ),
        lines=tuple(line for _, line in [*violations, *advice]),
        notes=(lint.note,) if lint is not None and lint.note else (),
    )


def _findings(
    dockerfile: Dockerfile, policies: Sequence[Policy], context: BuildContext
) -> list[tuple[Violation, int]]:
    found: list[tuple[Violation, int]] = []
    for policy in policies:
        settings = policy.rules
        for rule in DOCKERFILE_RULES.active(settings):
            for finding in rule.check(dockerfile, settings, context):
                violation = Violation(
                    rule=rule.id,
                    policy=policy.name,
                    enforcement=policy.enforcement,
                    field=finding.field,
                    message=finding.message,
                    container=finding.stage,
                    advisory=finding.advisory,
                )
                found.append((violation, finding.line))
    return found


def _lint_findings(
    lint: LintResult, dockerfile: Dockerfile, policy: Policy
) -> list[tuple[Violation, int]]:
    """hadolint's findings as advice, once, under the first policy that applies."""
    found = []
    for finding in lint.findings:
        stage, keyword = _at_line(dockerfile, finding.line)
        violation = Violation(
            rule=f"{HADOLINT_PREFIX}{finding.code}",
            policy=policy.name,
            enforcement=policy.enforcement,
            field=keyword,
            message=f"{finding.message} (hadolint {finding.level})",
            container=stage,
            advisory=True,
        )
        found.append((violation, finding.line))
    return found


def _at_line(dockerfile: Dockerfile, line: int) -> tuple[str | None, str]:
    """The stage and instruction keyword at ``line``, for naming a hadolint finding."""
    for stage in dockerfile.stages:
        for instruction in (stage.instruction, *stage.instructions):
            if instruction.line <= line <= instruction.end_line:
                return stage.label, instruction.keyword
    return None, "Dockerfile"


@dataclass(frozen=True, slots=True)
class ContextFiles:
    """Files of the build context (the Dockerfile's directory), read on request, bounded."""

    root: Path
    max_bytes: int

    def read(self, relative: str) -> str | None:
        normalized = posixpath.normpath("/" + relative.replace("\\", "/")).lstrip("/")
        if not normalized or normalized == ".":
            return None
        try:
            root = self.root.resolve()
            path = (root / normalized).resolve()
            if not path.is_relative_to(root) or not path.is_file():
                return None
            with open(path, "rb") as stream:
                data = stream.read(self.max_bytes + 1)
        except (OSError, RuntimeError):
            return None
        if len(data) > self.max_bytes:
            return None
        return data.decode("utf-8", "replace")
