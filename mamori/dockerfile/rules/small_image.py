"""dockerfile-small-image (advice): the final image carries what runs, not a whole OS or the
tools that built it.

Spec: advice, never a denial, when

- the final stage is built on a full OS image of which a small variant exists
  (``debian``, ``ubuntu``, ``python``, ``node``, ``golang`` on Docker Hub, with a tag that is
  not already ``slim``, ``alpine`` or another small variant); or
- in a multi-stage build, the final image installs build tools (``gcc``, ``build-essential``,
  ``make``, ``git``, compilers…) with the OS package manager and does not remove them again.

Every package in the final image is one more thing to scan, patch and exploit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mamori.dockerfile.rules._images import PulledImage, pulled_images
from mamori.dockerfile.rules.registry import BuildContext, DockerfileFinding, rule
from mamori.dockerfile.stages import Dockerfile, Stage
from mamori.images import DEFAULT_TAG, DOCKER_HUB, OFFICIAL_NAMESPACE
from mamori.rules.registry import RuleSettings

# Official image → what to use instead of its full tags.
SMALLER = {
    "debian": "a -slim tag (debian:<release>-slim)",
    "ubuntu": "a smaller base (debian:<release>-slim, or a distroless image)",
    "python": "a -slim tag (python:<version>-slim)",
    "node": "a -slim or -alpine tag (node:<version>-slim)",
    "golang": "a build stage on golang and a final stage FROM scratch or a distroless "
    "image holding only the binary",
}
SMALL_TAG_WORDS = ("slim", "alpine", "distroless", "minimal", "nanoserver", "busybox")
BUILD_TOOLS = frozenset(
    {
        "gcc",
        "g++",
        "gcc-c++",
        "clang",
        "make",
        "cmake",
        "build-essential",
        "build-base",
        "git",
        "autoconf",
        "automake",
        "libtool",
        "gfortran",
        "rustc",
        "cargo",
        "golang",
        "golang-go",
    }
)
_OPTIONS = r"(?:\s+-\S+)*\s+"
OS_INSTALL_RE = re.compile(
    rf"(?<![\w-])(?:(?:apt-get|apt|aptitude){_OPTIONS}install|(?:yum|dnf|microdnf|tdnf|zypper)"
    rf"{_OPTIONS}(?:install|in)|apk{_OPTIONS}add)(?![\w-])(?P<packages>[^;&|\n]*)"
)
OS_REMOVE_RE = re.compile(
    rf"(?<![\w-])(?:(?:apt-get|apt){_OPTIONS}(?:purge|remove)|(?:yum|dnf|microdnf|zypper)"
    rf"{_OPTIONS}(?:remove|erase)|apk{_OPTIONS}del)(?![\w-])(?P<packages>[^;&|\n]*)"
)
VIRTUAL_RE = re.compile(r"(?:--virtual|-t)[= ]\s*(\S+)")


@rule(
    rule_id="dockerfile-small-image",
    summary="(advice) the final image is built on a small base and keeps no build tools",
)
def check_small_image(
    dockerfile: Dockerfile, settings: RuleSettings, context: BuildContext
) -> list[DockerfileFinding]:
    findings: list[DockerfileFinding] = []
    chain = list(dockerfile.chain(dockerfile.final))
    root = chain[-1]
    for image in pulled_images(dockerfile):
        if image.use.instruction is root.instruction:
            advice = _full_base(image)
            if advice is not None:
                findings.append(image.finding(advice, advisory=True))
    if len(dockerfile.stages) > 1:
        findings.extend(_build_tools(chain))
    return findings


def _full_base(image: PulledImage) -> str | None:
    reference = image.reference
    if reference is None or reference.domain.lower() != DOCKER_HUB:
        return None
    namespace, _, name = reference.path.partition("/")
    if namespace != OFFICIAL_NAMESPACE or name not in SMALLER:
        return None
    tag = (reference.tag or DEFAULT_TAG).lower()
    if any(word in tag for word in SMALL_TAG_WORDS):
        return None
    return (
        f"the final stage is built on {image.shown}, a full OS image: every package in it is "
        f"one more to scan and patch; use {SMALLER[name]}"
    )


def _build_tools(chain: list[Stage]) -> Iterator[DockerfileFinding]:
    removed: set[str] = set()
    runs = [(stage, i) for stage in chain for i in stage.instructions if i.keyword == "RUN"]
    for _, instruction in runs:
        for match in OS_REMOVE_RE.finditer(instruction.command):
            removed.update(match.group("packages").split())
    for stage, instruction in runs:
        for match in OS_INSTALL_RE.finditer(instruction.command):
            packages = match.group("packages")
            virtual = VIRTUAL_RE.search(packages)
            if virtual is not None and virtual.group(1) in removed:
                continue
            names = {word.split("=")[0] for word in packages.split() if not word.startswith("-")}
            tools = sorted((names & BUILD_TOOLS) - removed)
            if tools:
                yield DockerfileFinding(
                    line=instruction.line,
                    field="RUN",
                    stage=stage.label,
                    advisory=True,
                    message=f"the final image installs build tools ({', '.join(tools)}): build in "
                    "an earlier stage and COPY --from it only what runs, so compilers and "
                    "source tools are not shipped",
                )
