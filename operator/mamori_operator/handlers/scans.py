"""ImageScan and VulnerabilityReport events: scan status on pods, kept current.

Pod events do not come through kopf: the operator lists and watches pods itself
(:mod:`~mamori_operator.state.pod_feed`), and a pod event refreshes that pod only. A new or
changed report refreshes only the pods it is about: ImageScans by digest, VulnerabilityReports
by owning workload and namespace. The start-up prime lists every report before the first pod is
looked at (``state/relist.py``), so every existing report is known by then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from mamori.policy import API_GROUP
from mamori_operator.scanning.providers import trivy_operator
from mamori_operator.scanning.scanner import IMAGESCAN_PLURAL, IMAGESCAN_VERSION
from mamori_operator.services import Services
from mamori_operator.state.records import image_scan_record


@kopf.on.event(API_GROUP, IMAGESCAN_VERSION, IMAGESCAN_PLURAL)
def image_scan_event(event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    services.handled.observe("imagescan", str(body.metadata.uid), event.get("type"))
    record = image_scan_record(dict(body))
    if record is None:
        return
    digest = str(record.spec["digest"])
    if event.get("type") == "DELETED":
        services.state.remove_image_scan(digest)
    else:
        if services.state.image_scan(digest) == record:
            return  # already in the view (the start-up prime read it): nothing new for pods
        services.state.set_image_scan(digest, record)
        if record.managed:
            return  # our own copy of another provider's answer: nothing new for pods
    # the pod feed's workers refresh them, each pod once, with the pods the feed queued itself
    services.pods.look_again(services.state.pods_using(digest))


@kopf.on.event(trivy_operator.GROUP, trivy_operator.VERSION, trivy_operator.PLURAL)
def vulnerability_report_event(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    services: Services = memo.services
    services.handled.observe("vulnerabilityreport", str(body.metadata.uid), event.get("type"))
    key = trivy_operator.report_key(dict(body))
    if key is None:
        return
    if event.get("type") == "DELETED":
        services.state.set_vulnerability_report(key, None)
    else:
        report = trivy_operator.report_from_object(dict(body), top=services.config.top_findings)
        if services.state.vulnerability_report(key) == report:
            return  # already in the view (the start-up prime read it): nothing new for pods
        services.state.set_vulnerability_report(key, report)
    namespace, kind, name, _container = key
    services.pods.look_again(services.state.pods_owned_by(namespace, kind, name))
