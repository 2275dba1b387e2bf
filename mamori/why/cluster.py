"""Reading the cluster for ``why``: GET requests over HTTPS, with the standard library.

Where the API server is and who we are come from the project's kubeconfig loader
(:mod:`mamori.kubeconfig`: client certificates, bearer tokens, exec plugins, the pod's service
account), which loads the Kubernetes client library only when the command runs; the requests
themselves are plain ``urllib`` GETs with a timeout, so ``why`` only ever reads, and the core
package never imports an API client.

kubectl's order is kept: ``--kubeconfig``, else ``$KUBECONFIG`` (several files joined by ``:``),
else the pod's service account, else ``~/.kube/config``; ``--context`` picks a context.
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mamori import __version__
from mamori.kubeconfig import load_client_configuration
from mamori.policy import API_GROUP, PLURAL, VERSION

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
USER_AGENT = f"kubectl-mamori/{__version__}"


class ClusterError(Exception):
    """A read that failed; the message says what was read and why it failed."""


class NotFound(ClusterError):
    """The API server answered 404."""


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """How to reach the cluster: kubectl's flags of the same names."""

    kubeconfig: str | None = None
    context: str | None = None
    timeout: float = 10.0


class Cluster:
    """The API server, for GETs of JSON objects."""

    def __init__(
        self,
        server: str,
        *,
        tls: ssl.SSLContext,
        auth_headers: Callable[[], Mapping[str, str]],
        timeout: float,
        default_namespace: str,
    ) -> None:
        self.server = server.rstrip("/")
        self.default_namespace = default_namespace
        self._auth_headers = auth_headers
        self._timeout = timeout
        # As kubectl: a loopback server is never reached through a proxy.
        proxies: dict[str, str] | None = {} if _is_loopback(self.server) else None
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler(proxies), urllib.request.HTTPSHandler(context=tls)
        )

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET ``path``; raise :class:`NotFound` on 404, :class:`ClusterError` on any failure."""
        url = self.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        request = urllib.request.Request(url, headers={**headers, **self._auth_headers()})
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            message = _status_message(error.read(64 * 1024)) or str(error.reason)
            failure = NotFound if error.code == 404 else ClusterError
            raise failure(f"HTTP {error.code}: {message}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ClusterError(f"cannot reach the API server at {self.server}: {reason}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise ClusterError(
                f"the answer to GET {path} is larger than {MAX_RESPONSE_BYTES} bytes"
            )
        try:
            value = json.loads(body)
        except ValueError:
            raise ClusterError(f"the answer to GET {path} is not JSON") from None
        if not isinstance(value, dict):
            raise ClusterError(f"the answer to GET {path} is not a JSON object")
        return value

    # What ``why`` reads -------------------------------------------------------------------

    def namespace(self, name: str) -> dict[str, Any]:
        return self.get(f"/api/v1/namespaces/{name}")

    def policies(self) -> list[dict[str, Any]]:
        """Every ClusterSecurityPolicy, as the API server stores it (spec and status)."""
        return _items(self.get(f"/apis/{API_GROUP}/{VERSION}/{PLURAL}"))

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return _items(self.get(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": selector}))

    def image_scan(self, name: str) -> dict[str, Any] | None:
        try:
            return self.get(f"/apis/{API_GROUP}/{VERSION}/imagescans/{name}")
        except NotFound:
            return None


def connect(options: ClusterOptions, environ: Mapping[str, str] | None = None) -> Cluster:
    """A :class:`Cluster` for ``options``; :class:`ClusterError` when the kubeconfig is unusable."""
    import kubernetes.config
    import yaml

    environ = os.environ if environ is None else environ
    path = options.kubeconfig or environ.get("KUBECONFIG") or None
    try:
        configuration = load_client_configuration(
            Path(path) if path else None, environ, context=options.context
        )
        namespace = _context_namespace(path, options.context, in_cluster=_in_cluster(environ))
        tls = _tls_context(configuration)
    except (kubernetes.config.ConfigException, OSError, ValueError, yaml.YAMLError) as error:
        where = path or "the default kubeconfig (~/.kube/config or the pod's service account)"
        raise ClusterError(f"cannot use {where}: {error}") from None

    def auth_headers() -> dict[str, str]:
        # Asked per request: an exec plugin's token is refreshed by the loader when it expires.
        settings = configuration.auth_settings().values()
        return {s["key"]: s["value"] for s in settings if s["in"] == "header" and s["value"]}

    return Cluster(
        configuration.host,
        tls=tls,
        auth_headers=auth_headers,
        timeout=options.timeout,
        default_namespace=namespace,
    )


def _tls_context(configuration: Any) -> ssl.SSLContext:
    if getattr(configuration, "tls_server_name", None):
        raise ValueError("tls-server-name is not supported by kubectl mamori")
    tls = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        tls.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    if not configuration.verify_ssl:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    return tls


def _context_namespace(path: str | None, context: str | None, *, in_cluster: bool) -> str:
    """The namespace kubectl would use without ``-n``: the context's, else the pod's, else
    ``default``."""
    import kubernetes.config

    if path is None and in_cluster:
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"
    contexts, current = kubernetes.config.list_kube_config_contexts(config_file=path)
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    namespace = (chosen or {}).get("context", {}).get("namespace")
    return namespace if isinstance(namespace, str) and namespace else "default"


def _in_cluster(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_NAMESPACE.is_file()


def _items(listing: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = listing.get("items")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _status_message(body: bytes) -> str | None:
    """The ``message`` of the API server's Status object, when the body is one."""
    try:
        status = json.loads(body)
    except ValueError:
        return None
    message = status.get("message") if isinstance(status, dict) else None
    return message if isinstance(message, str) and message else None


def _is_loopback(server: str) -> bool:
    host = urllib.parse.urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
