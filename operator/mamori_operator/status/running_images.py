"""Which digest each image of a pod runs as, by what the kubelet reports.

The audit judges signatures and scans of what runs, not of what a tag points to today: the
digest of a started container is its ``status.*ContainerStatuses[].imageID`` (matched to the
spec's container by name, ``docker-pullable://`` and the like stripped: see
:func:`~mamori_operator.state.pods.pod_images`). An image pinned by digest runs that digest.
Only an image the kubelet has not reported yet (the pod has not started) has no running digest:
the caller then asks the registry, as admission does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mamori.images import ImageReference, InvalidReference, parse_reference
from mamori_operator.scanning.model import ImageRef


class RunningDigests:
    """Spec image reference → the digests its containers run (one, unless they disagree)."""

    def __init__(self, running: Mapping[ImageReference, tuple[str, ...]]) -> None:
        self._running = running

    @classmethod
    def of(cls, images: Iterable[ImageRef]) -> RunningDigests:
        """From a pod record's images: only tag references with a digest the kubelet reported
        (a pinned reference's own digest needs no lookup)."""
        running: dict[ImageReference, list[str]] = {}
        for image in images:
            if image.digest is None:
                continue
            try:
                reference = parse_reference(image.image)
            except InvalidReference:
                continue
            if reference.digest is not None:
                continue
            digests = running.setdefault(reference, [])
            if image.digest not in digests:
                digests.append(image.digest)
        return cls({reference: tuple(sorted(d)) for reference, d in running.items()})

    def digests(self, reference: ImageReference) -> tuple[str, ...]:
        """The digests containers with this image run; empty when none has started."""
        return self._running.get(reference, ())

    def __bool__(self) -> bool:
        return bool(self._running)
