"""The operator's few Kubernetes writes and reads, as plain dicts, each one counted.

kopf delivers what the operator watches; everything it *does* goes through :class:`Kube`. Keeping
the calls in one place makes the cost of a pod event visible (the ``mamori_operator_api_requests``
counter, which the benchmark reads) and keeps JSON in, JSON out: no generated model classes
between the API server and our comparisons.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.client.rest import ApiException, RESTClientObject

from mamori_operator.metrics import Metrics

FIELD_MANAGER = "mamori"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mamori"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON = "application/json"
DEFAULT_TIMEOUT = 30.0


class KubeError(Exception):
    """A failed API call; ``status`` is the HTTP status (0 when the server was unreachable)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Kube:
    """Thin, counted access to the API server."""

    def __init__(
        self,
        configuration: kubernetes.client.Configuration,
        *,
        metrics: Metrics,
        pool: int,
        on_unreachable: Callable[[], object] | None = None,
        fence: threading.Event | None = None,
    ) -> None:
        """``on_unreachable`` is called whenever the API server could not be reached: the
        watches may have missed events meanwhile (see ``Handled.relist_wanted``). Once ``fence``
        is set (the replica lost the leader Lease), every write is refused before it is sent:
        handlers still running while the operator stops must not race the new leader."""
        configuration.connection_pool_maxsize = max(pool, 4)
        self.api = kubernetes.client.ApiClient(configuration)
        self.metrics = metrics
        self.on_unreachable = on_unreachable
        self.fence = fence

    def close(self) -> None:
        self.api.close()

    def disable_client_retries(self) -> None:
        """Make every call one attempt, so that it ends within the timeout its caller gave.

        urllib3 repeats a timed-out or reset GET or PUT three more times by default; a caller
        racing a deadline (leader election) must see the failure at its timeout and decide
        itself whether time is left to try again.
        """
        configuration = self.api.configuration
        configuration.retries = False
        stale = self.api.rest_client
        self.api.rest_client = RESTClientObject(configuration)
        stale.pool_manager.clear()

    # -- generic ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        resource: str,
        body: object = None,
        content_type: str = JSON,
        query: Sequence[tuple[str, str]] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """One API call; raises :class:`KubeError` with the server's reason.

        ``timeout`` bounds each attempt; the client may retry a failed GET, PUT or DELETE on its
        own (urllib3's default) unless :meth:`disable_client_retries` was called.
        """
        if method != "GET" and self.fence is not None and self.fence.is_set():
            raise KubeError(0, "NotLeader", "this replica lost the leader Lease: no more writes")
        self.metrics.api_requests.labels(verb=method.lower(), resource=resource).inc()
        try:
            response = self.api.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Content-Type": content_type, "Accept": JSON},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as error:
            raise _kube_error(error) from None
        except (OSError, urllib3.exceptions.HTTPError) as error:  # refused, reset, timed out
            if self.on_unreachable is not None:
                self.on_unreachable()
            raise KubeError(0, "Unreachable", str(error)) from None
        data = response.data
        return json.loads(data) if data else {}

    def list_all(
        self, path: str, *, resource: str, label_selector: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a collection, page by page (bounded memory for large clusters)."""
        for items, _version in self.list_pages(
            path, resource=resource, label_selector=label_selector
        ):
            yield from items

    def list_pages(
        self, path: str, *, resource: str, label_selector: str | None = None, limit: int = 500
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """A collection page by page, each with the list's resourceVersion (the last page's is
        where a watch of the whole list starts)."""
        token = ""
        while True:
            query = [("limit", str(limit))]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if token:
                query.append(("continue", token))
            page = self.request("GET", path, resource=resource, query=query)
            metadata = page.get("metadata") or {}
            yield page.get("items") or [], str(metadata.get("resourceVersion") or "")
            token = metadata.get("continue") or ""
            if not token:
                return

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        timeout: float,
        opened: Callable[[urllib3.BaseHTTPResponse], object] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The events of one watch request from ``resource_version``, decoded one line at a
        time (the stream is never held whole); ends when the server closes it after
        ``timeout`` seconds. Not counted as an API call (like kopf's watches). ``opened`` gets
        the response, so that another thread can shut it down to stop the watch at once."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(int(timeout))),
        ]
        try:
            response = self.api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": JSON},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=(10, timeout + 10),
            )
        except ApiException as error:
            raise _kube_error(error) from None
        except (OSError, urllib3.exceptions.HTTPError) as error:
            if self.on_unreachable is not None:
                self.on_unreachable()
            raise KubeError(0, "Unreachable", str(error)) from None
        if opened is not None:
            opened(response)
        try:
            rest = b""
            for chunk in response.stream(64 * 1024, decode_content=True):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if rest.strip():
                yield json.loads(rest)
        except (OSError, urllib3.exceptions.HTTPError) as error:
            raise KubeError(0, "Unreachable", str(error)) from None
        finally:
            response.close()  # a stream cut short must not go back to the pool half-read
            response.release_conn()

    # -- what the operator does ----------------------------------------------------------------

    def apply(
        self, path: str, body: Mapping[str, Any], *, resource: str, force: bool
    ) -> dict[str, Any]:
        """Server-side apply as field manager ``mamori``; ``force`` takes fields back."""
        query = [("fieldManager", FIELD_MANAGER)]
        if force:
            query.append(("force", "true"))
        return self.request(
            "PATCH", path, resource=resource, body=dict(body), content_type=APPLY, query=query
        )

    def merge_patch(self, path: str, body: Mapping[str, Any], *, resource: str) -> dict[str, Any]:
        return self.request(
            "PATCH",
            path,
            resource=resource,
            body=dict(body),
            content_type=MERGE,
            query=[("fieldManager", FIELD_MANAGER)],
        )

    def delete(self, path: str, *, resource: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            self.request("DELETE", path, resource=resource)
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    def get(
        self, path: str, *, resource: str, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any] | None:
        try:
            return self.request("GET", path, resource=resource, timeout=timeout)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def create(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        resource: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        return self._write("POST", path, body, resource=resource, timeout=timeout)

    def replace(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        resource: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        return self._write("PUT", path, body, resource=resource, timeout=timeout)

    def _write(
        self, method: str, path: str, body: Mapping[str, Any], *, resource: str, timeout: float
    ) -> dict[str, Any]:
        """A create or replace, under our field manager (``kubectl get --show-managed-fields``)."""
        return self.request(
            method,
            path,
            resource=resource,
            body=dict(body),
            query=[("fieldManager", FIELD_MANAGER)],
            timeout=timeout,
        )


def network_policy_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/networking.k8s.io/v1/namespaces/{quote(namespace)}/networkpolicies"
    return base if name is None else f"{base}/{quote(name)}"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}"


def cluster_object_path(group: str, version: str, plural: str, name: str | None = None) -> str:
    base = f"/apis/{group}/{version}/{plural}"
    return base if name is None else f"{base}/{quote(name)}"


def _kube_error(error: ApiException) -> KubeError:
    reason = str(error.reason or "")
    message = ""
    try:
        payload = json.loads(error.body or "{}")
        reason = payload.get("reason") or reason
        message = payload.get("message") or ""
    except (TypeError, ValueError):
        message = str(error.body or "")
    return KubeError(int(error.status or 0), reason, message)
