"""``/healthz`` for the kubelet's liveness probe, answered by standbys and the leader alike.

kopf's own liveness endpoint only exists while kopf runs, that is only on the leader; a standby
waiting for the Lease must not be restarted for waiting. The leader is healthy while its
housekeeping loop keeps making passes; a wedged loop fails the probe and gets the pod restarted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Check = Callable[[], tuple[bool, str]]


class HealthServer:
    def __init__(self, port: int, check: Check, *, host: str = "0.0.0.0") -> None:
        self.check = check
        handler = _handler(self)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="mamori-health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(owner: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/healthz":
                self.send_error(404)
                return
            healthy, text = owner.check()
            body = (text + "\n").encode()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:  # probes every few seconds: not worth a line
            pass

    return Handler


class Liveness:
    """What the probe reports: standby, starting, or whether housekeeping still runs."""

    def __init__(self, *, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after = stall_after
        self.clock = clock
        self._passes: Callable[[], int] | None = None
        self._seen = (-1, clock())

    def leading(self, passes: Callable[[], int]) -> None:
        self._passes = passes
        self._seen = (-1, self.clock())

    def __call__(self) -> tuple[bool, str]:
        if self._passes is None:
            return True, "standby: waiting for the leader Lease"
        count, since = self._seen
        current = self._passes()
        now = self.clock()
        if current != count:
            self._seen = (current, now)
            return True, f"leading: {current} housekeeping passes"
        if now - since > self.stall_after:
            return False, f"housekeeping has made no pass for {now - since:.0f}s"
        return True, f"leading: {current} housekeeping passes"
