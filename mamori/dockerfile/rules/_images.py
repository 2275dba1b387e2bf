"""The images a Dockerfile pulls, parsed once for the image rules.

Each pulled image (``FROM``, ``COPY --from``) is resolved with the build arguments' defaults
and parsed with :func:`mamori.images.parse_reference`, the parser the pod rules use, so an image
is judged the same in a Dockerfile and in a pod.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mamori.dockerfile.rules.registry import DockerfileFinding
from mamori.dockerfile.stages import Dockerfile, ImageUse
from mamori.images import ImageReference, InvalidReference, parse_reference


@dataclass(frozen=True, slots=True)
class PulledImage:
    use: ImageUse
    reference: ImageReference | None
    problem: str | None
    """Why the image cannot be judged (a build argument without default, an invalid
    reference); None when ``reference`` is set."""

    @property
    def shown(self) -> str:
        """The image as messages quote it: resolved, with what was written when different."""
        use = self.use
        if use.written == use.resolved:
            return repr(use.resolved)
        return f"{use.written} (= {use.resolved!r})"

    def finding(self, message: str, *, advisory: bool = False) -> DockerfileFinding:
        use = self.use
        return DockerfileFinding(
            line=use.instruction.line,
            field=use.field,
            message=message,
            stage=use.stage.label,
            advisory=advisory,
        )

    def undecided(self) -> DockerfileFinding:
        """The finding for an image the rule cannot judge."""
        assert self.problem is not None
        return self.finding(f"{self.use.field} {self.use.written}: {self.problem}")


def pulled_images(dockerfile: Dockerfile) -> Iterator[PulledImage]:
    for use in dockerfile.pulled_images():
        if use.expansion.unset:
            names = ", ".join(use.expansion.unset)
            problem = (
                f"the image depends on build arguments without a default ({names}), so it "
                "cannot be checked; give the ARG a default (a pinned image) before the first FROM"
            )
            yield PulledImage(use, None, problem)
            continue
        try:
            reference = parse_reference(use.resolved)
        except InvalidReference as error:
            yield PulledImage(use, None, f"{use.resolved[:120]!r} is not a valid image: {error}")
            continue
        yield PulledImage(use, reference, None)
