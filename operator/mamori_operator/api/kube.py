"""The operator's few Kubernetes writes and reads, as plain dicts, each one counted.

kopf delivers what the operator watches; everything it *does* goes through :class:`Kube`. Keeping
the calls in one place makes the cost of a pod event visible (the ``mamori_operator_api_requests``
counter, which the benchmark reads) and keeps JSON in, JSON out: no generated model classes
between the API server and our comparisons.

Each call goes straight to the urllib3 pool that the kubernetes client builds from the
configuration (CA, client certificate, ``tls_server_name``, proxy, retries): the body is encoded
once, the URL and the headers are built once, and the credentials are asked of the
configuration per call, as the generated client does, so a token's refresh hook (in-cluster
token rotation, exec plugins) still runs before each request. The generated client's request
path re-walked every body and every parameter on the way (``sanitize_for_serialization``) and
rebuilt the request twice more before urllib3 saw it; bench/operator/calls.py measures the two.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import kubernetes.client
import urllib3
from kubernetes.client.rest import RESTClientObject

from mamori_operator.metrics import Metrics

FIELD_MANAGER = "mamori"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mamori"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON = "application/json"
DEFAULT_TIMEOUT = 30.0
# What the generated client sends, so that audit logs and API priority rules see no change.
USER_AGENT = f"OpenAPI-Generator/{kubernetes.client.__version__}/python"
BEARER = "BearerToken"  # the configuration's name for its token (its ``auth_settings()`` key)


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
        self.configuration = configuration
        self._base = str(configuration.host).rstrip("/")  # one slash before each path
        self._http, self._opener, self._prefix = self._connections()
        self.metrics = metrics
        self.on_unreachable = on_unreachable
        self.fence = fence

    def _connections(
        self,
    ) -> tuple[urllib3.PoolManager, urllib3.PoolManager | urllib3.HTTPConnectionPool, str]:
        """The client's own pool manager (TLS, client certificate, CA, proxy and retries as it
        sets them), what each request is sent to, and what goes before each request's path.

        For an ``https`` server that is the manager's one connection pool for it, and the
        server's path: requests skip the manager's per-request URL parsing and pool lookup
        (about a sixth of a call's client CPU); through a proxy that pool tunnels with CONNECT
        all the same. A plain ``http`` server keeps the manager and whole URLs, which it
        rewrites for a forwarding proxy."""
        manager = RESTClientObject(self.configuration).pool_manager
        base = urllib3.util.parse_url(self._base)
        if base.scheme != "https":
            return manager, manager, self._base
        return manager, manager.connection_from_url(self._base), (base.path or "").rstrip("/")

    def close(self) -> None:
        self._http.clear()

    def disable_client_retries(self) -> None:
        """Make every call one attempt, so that it ends within the timeout its caller gave.

        urllib3 repeats a timed-out or reset GET or PUT three more times by default; a caller
        racing a deadline (leader election) must see the failure at its timeout and decide
        itself whether time is left to try again.
        """
        self.configuration.retries = False
        stale = self._http
        self._http, self._opener, self._prefix = self._connections()
        stale.clear()

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

        ``body`` is sent as JSON, or as it is when it is ``bytes`` (already encoded).
        ``timeout`` bounds each attempt; the client may retry a failed GET, PUT or DELETE on its
        own (urllib3's default) unless :meth:`disable_client_retries` was called.
        """
        if method != "GET" and self.fence is not None and self.fence.is_set():
            raise KubeError(0, "NotLeader", "this replica lost the leader Lease: no more writes")
        self.metrics.api_requests.labels(verb=method.lower(), resource=resource).inc()
        response = self._send(
            method,
            path,
            query=query,
            content_type=content_type,
            body=_encoded(body),
            timeout=urllib3.Timeout(total=timeout) if timeout else None,
        )
        data = self._read(response)
        return json.loads(data) if data else {}

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]],
        content_type: str,
        body: bytes | None,
        timeout: urllib3.Timeout | None,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; the response of a 2xx answer, unread; else :class:`KubeError`."""
        headers = {"Content-Type": content_type, "Accept": JSON, "User-Agent": USER_AGENT}
        query = list(query)
        # Per call, as the generated client does: the refresh hook may put a new token in.
        credentials = self.configuration.auth_settings().get(BEARER)
        if credentials:
            _apply_credentials(credentials, headers=headers, query=query)
        target = path + "?" + urlencode(query) if query else path
        try:
            response = self._opener.urlopen(
                method,
                self._prefix + target,
                body=body,
                headers=headers,
                timeout=timeout,
                preload_content=False,
            )
        except (OSError, urllib3.exceptions.HTTPError) as error:  # refused, reset, timed out
            raise self._unreachable(error) from None
        if not 200 <= response.status <= 299:
            raise _kube_error(response.status, response.reason, self._read(response))
        return response

    def _read(self, response: urllib3.BaseHTTPResponse) -> bytes:
        try:
            return response.data
        except (OSError, urllib3.exceptions.HTTPError) as error:  # cut off mid-answer
            raise self._unreachable(error) from None

    def _unreachable(self, error: Exception) -> KubeError:
        if self.on_unreachable is not None:
            self.on_unreachable()
        return KubeError(0, "Unreachable", str(error))

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
        response = self._send(
            "GET",
            path,
            query=query,
            content_type=JSON,
            body=None,
            timeout=urllib3.Timeout(connect=10, read=timeout + 10),
        )
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


def _encoded(body: object) -> bytes | None:
    """The request body: JSON, encoded once; bytes (already encoded) as they are."""
    if body is None or isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":"), default=_json_default).encode()


def _json_default(value: object) -> str:
    """Dates as the generated client wrote them (ISO 8601); anything else is a mistake."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _apply_credentials(
    setting: Mapping[str, Any], *, headers: dict[str, str], query: list[tuple[str, str]]
) -> None:
    """Put one of the configuration's ``auth_settings()`` where it says it goes."""
    where, value = setting["in"], setting["value"]
    if where == "header":
        headers[str(setting["key"])] = value
    elif where == "query":
        query.append((str(setting["key"]), value))
    elif where == "cookie":
        headers["Cookie"] = value
    else:
        raise ValueError(f"credentials must go in a header, the query or a cookie, not {where!r}")


def _kube_error(status: int, http_reason: str | None, body: bytes) -> KubeError:
    """The server's Status (its reason and message) when it sent one, else the HTTP reason."""
    reason = str(http_reason or "")
    text = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text or "{}")
    except ValueError:
        payload = None
    if not isinstance(payload, dict):  # not a Status: a proxy's page, say
        return KubeError(status, reason, text)
    return KubeError(
        status, str(payload.get("reason") or reason), str(payload.get("message") or "")
    )
