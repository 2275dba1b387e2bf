"""ImageScan objects written by a CI pipeline (``mamori.io/v1alpha1``, one per image digest).

A pipeline that scans images before release records its results as an ImageScan named after the
digest (``sha256-<hex>``). The operator watches ImageScans, so this lookup reads memory. Objects
that mamori wrote itself (managed-by label) are copies of other providers' answers and are not
treated as a source of their own.
"""

from __future__ import annotations

from mamori.policy.terms import Provider
from mamori_operator.scanning.model import Outcome, ProviderAnswer, image_scan_name
from mamori_operator.scanning.providers import register
from mamori_operator.scanning.providers.base import ProviderWiring, ScanTarget
from mamori_operator.state.cluster import ClusterState

NAME = Provider.IMAGESCAN.value


class ImageScanProvider:
    name = NAME

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def scope(self, target: ScanTarget) -> str:
        return ""

    def lookup(self, target: ScanTarget) -> ProviderAnswer | None:
        record = self.state.image_scan(target.digest)
        if record is None or record.managed or record.report is None:
            return ProviderAnswer(
                NAME,
                Outcome.UNSCANNED,
                message=f"no ImageScan {image_scan_name(target.digest)} from a pipeline",
            )
        return ProviderAnswer(NAME, Outcome.COMPLETE, report=record.report)


@register(Provider.IMAGESCAN)
def _build(wiring: ProviderWiring) -> ImageScanProvider:
    return ImageScanProvider(wiring.state)
