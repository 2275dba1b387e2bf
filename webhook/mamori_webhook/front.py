"""The server front: TLS and request reading on an event loop, whole requests to request threads.

Why: with gunicorn's threaded workers a connection held a request thread from its TLS handshake
to its last byte, and the client timeout applied per socket read. A few clients that stalled
mid-handshake or dribbled a header byte every few seconds held every thread, and fresh reviews
(and ``/readyz``) timed out; with ``failurePolicy: Fail`` that fails every pod creation in the
cluster. Here each gunicorn worker runs one event loop (uvloop) that does the handshakes (with a
deadline), reads each request whole (head and body within ``--client-timeout`` of its first
byte, the body no larger than ``--max-body-bytes``), and only then hands it to a small pool of
threads running the Flask app. A slow or silent client costs a timer and the bytes it sent (at
most a 64 KiB head and a body within the limit), never a thread; a request that does not arrive
in time gets 408 and the connection is closed.

gunicorn stays the process manager: two worker processes, each on its own ``SO_REUSEPORT``
socket, heartbeats, graceful SIGTERM, prometheus multiprocess metrics (docs/benchmarks.md has
the comparison that chose this design).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import resource
import signal
import ssl
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, cast

import uvloop
from gunicorn.workers.base import Worker

from mamori_webhook.http1 import (
    MAX_HEAD_BYTES,
    BadRequest,
    DirectRoute,
    RequestHead,
    WsgiApp,
    call_app,
    direct_routes,
    error_response,
    json_answer,
    parse_head,
    request_path,
    wsgi_environ,
)

LOG = logging.getLogger("mamori_webhook.front")
ACCESS_LOG = logging.getLogger("gunicorn.access")  # configured by logs.logging_config
HEARTBEAT = 1.0  # seconds between the worker's heartbeats (and checks for a stop)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
TLS_SHUTDOWN_TIMEOUT = 2.0
DRAIN_IDLE_SECONDS = 2.0  # after SIGTERM, an idle connection unused this long is closed


class CertificateSource(Protocol):
    """What the front needs of :class:`mamori_webhook.tls.CertificateReloader`."""

    def context(self) -> ssl.SSLContext: ...


@dataclass(frozen=True, slots=True)
class Limits:
    client_timeout: float
    keepalive: float
    max_body_bytes: int
    max_connections: int = 2048
    access_log: bool = False


def listener_context(certificates: CertificateSource) -> ssl.SSLContext:
    """The listening socket's context: TLS 1.2+, and each handshake served from the current
    certificate (the reloader's context is swapped in as the ClientHello is read)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])

    def current_certificate(connection: Any, server_name: str | None, _: ssl.SSLContext) -> Any:
        try:
            connection.context = certificates.context()
        except Exception:  # an exception here would only be printed by OpenSSL's callback
            LOG.exception("no TLS certificate to serve")
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    context.sni_callback = current_certificate
    return context


class Front:
    """One worker's serving state: the app, its request threads, the open connections.

    ``routes`` are the app's direct routes (``POST /validate``): a request for one is answered
    by a plain function in the request thread, without building a WSGI environ and a Flask
    request and response around it (a third to a half of a review's server CPU, measured in
    docs/benchmarks.md). A route may decline a request (returns None); that one, and every
    other request, goes to the WSGI app as before.
    """

    def __init__(
        self,
        *,
        app: WsgiApp,
        limits: Limits,
        threads: int,
        loop: asyncio.AbstractEventLoop,
        routes: Mapping[tuple[str, str], DirectRoute] | None = None,
    ) -> None:
        self.app = app
        self.routes = dict(routes or {})
        self.limits = limits
        self.loop = loop
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mamori-request")
        self.connections: set[Connection] = set()
        self.accepting = True
        self.stopped_at = 0.0

    def protocol(self) -> Connection:
        return Connection(self)

    def respond(self, environ: dict[str, Any], *, keep_alive: bool) -> tuple[bytes, bool]:
        """Run the app on one whole request (in a request thread)."""
        response, keep_alive = call_app(self.app, environ, keep_alive=keep_alive)
        if self.limits.access_log:
            self.log_access(
                environ["REMOTE_ADDR"],
                environ["REQUEST_METHOD"],
                environ["PATH_INFO"],
                environ["SERVER_PROTOCOL"],
                response,
            )
        return response, keep_alive

    def respond_direct(
        self,
        route: DirectRoute,
        head: RequestHead,
        body: bytes,
        *,
        server: tuple[str, int],
        peer: tuple[str, int] | None,
        keep_alive: bool,
    ) -> tuple[bytes, bool]:
        """Answer one whole request by its direct route (in a request thread); a request the
        route declines goes to the app."""
        remote = peer[0] if peer else ""
        answer = route(head, body, remote)
        if answer is None:
            environ = wsgi_environ(head, body, server=server, peer=peer)
            return self.respond(environ, keep_alive=keep_alive)
        status, payload = answer
        response = json_answer(status, payload, keep_alive=keep_alive)
        if self.limits.access_log:
            self.log_access(remote, head.method, request_path(head), head.version, response)
        return response, keep_alive

    @staticmethod
    def log_access(remote: str, method: str, path: str, version: str, response: bytes) -> None:
        status = response[9:12].decode("latin-1")
        ACCESS_LOG.info('%s "%s %s %s" %s %d', remote, method, path, version, status, len(response))

    def make_room(self, newcomer: Connection) -> None:
        """Over ``max_connections``: close the connection that has waited longest for a request
        (idle keep-alive, or a request still arriving). One the app is answering is never
        closed; a client whose idle connection is closed opens a new one, as HTTP allows."""
        if len(self.connections) <= self.limits.max_connections:
            return
        waiting = [c for c in self.connections if c is not newcomer and not c.busy]
        if waiting:
            oldest = min(waiting, key=lambda connection: connection.waiting_since)
            self.connections.discard(oldest)  # counted out now; its TLS close takes a moment
            LOG.warning(
                "%d connections open, the limit is %d: closing the one waiting longest",
                len(self.connections),
                self.limits.max_connections,
            )
            oldest.close()

    def stop_accepting(self) -> None:
        """From now on every answer says ``Connection: close`` and ends its connection.

        Idle keep-alive connections are not closed at once: the API server keeps sending on
        its pooled connections to this pod (through the Service's conntrack entries) after the
        endpoint is gone, and a connection closed just as a request is written on it fails that
        admission with EOF (a POST is not retried). Each is ended by its next answer instead, or
        by :meth:`close_idle` once the client has left it unused for a while.
        """
        self.accepting = False
        self.stopped_at = self.loop.time()

    def close_idle(self, *, unused_for: float) -> None:
        """Close connections that have waited more than ``unused_for`` seconds for a request
        since the stop began: a client reuses its most recently used connection first, so these
        are the least likely to be written on at the moment they close."""
        now = self.loop.time()
        for connection in list(self.connections):
            if now - max(connection.waiting_since, self.stopped_at) >= unused_for:
                connection.close_if_idle()


class Connection(asyncio.Protocol):
    """One client connection, after its TLS handshake: read whole requests, answer in order.

    States: idle (waiting for a request's first byte, keep-alive timer armed), reading (the
    request deadline armed), busy (the app has the request; reading paused), draining (an
    oversized body is read off and dropped after its 400).
    """

    def __init__(self, front: Front) -> None:
        self.front = front
        self.limits = front.limits
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.head: RequestHead | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.started = False  # a request's first byte has arrived
        self.busy = False
        self.late = False  # the deadline passed while the app had the request
        self.discard = 0  # bytes of a refused body still to drop
        self.server: tuple[str, int] = ("", 0)
        self.peer: tuple[str, int] | None = None
        self.waiting_since = front.loop.time()  # when it began waiting for its current request

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.front.connections.add(self)
        self.front.make_room(self)
        sockname = transport.get_extra_info("sockname")
        self.server = (str(sockname[0]), int(sockname[1])) if sockname else ("", 0)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else None
        # The first request must arrive whole within the deadline of the handshake's end.
        self.arm(self.limits.client_timeout, self.deadline_passed)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.disarm()

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # refused or timed out: nothing more is read
        if self.discard:
            dropped = min(self.discard, len(data))
            self.discard -= dropped
            data = data[dropped:]
            if not self.discard and not self.busy and self.head is not None:
                self.head = None  # the refused request's answer is out; its body is gone
                self.buffer += data
                self.next_request()
                return
        self.buffer += data
        if not self.busy and not self.discard:
            self.advance()

    # reading

    def advance(self) -> None:
        """Read as far as the buffer allows; hand a complete request to the app."""
        if not self.started:
            if not self.buffer:
                return
            self.started = True
            self.arm(self.limits.client_timeout, self.deadline_passed)
        head = self.head
        if head is None:
            end = self.buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self.refuse(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
                return
            raw = bytes(self.buffer[:end]).lstrip(b"\r\n")
            del self.buffer[: end + 4]
            try:
                head = parse_head(raw)
            except BadRequest as error:
                self.refuse(error.status, error.reason)
                return
            self.head = head
            if head.content_length > self.limits.max_body_bytes:
                self.refuse_body(head)
                return
            if head.expects_continue and len(self.buffer) < head.content_length:
                self.write(CONTINUE)
        if len(self.buffer) < head.content_length:
            return
        body = bytes(self.buffer[: head.content_length])
        del self.buffer[: head.content_length]
        self.disarm()
        self.dispatch(head, body)

    def refuse_body(self, head: RequestHead) -> None:
        """Let the app answer an oversized request (its 400 and metric) without its body, and
        drop the body as it arrives: within the deadline, and only up to a few times the limit."""
        self.discard = head.content_length
        dropped = min(self.discard, len(self.buffer))
        del self.buffer[:dropped]
        self.discard -= dropped
        self.dispatch(head, b"")

    def dispatch(self, head: RequestHead, body: bytes) -> None:
        assert self.transport is not None
        self.busy = True
        if not self.discard:
            self.transport.pause_reading()  # nothing more is read until this one is answered
        keep_alive = head.keep_alive and self.front.accepting
        route = None if self.discard else self.front.routes.get((head.method, request_path(head)))
        job: Callable[[], tuple[bytes, bool]]
        if route is not None:
            job = functools.partial(
                self.front.respond_direct,
                route,
                head,
                body,
                server=self.server,
                peer=self.peer,
                keep_alive=keep_alive,
            )
        else:
            environ = wsgi_environ(head, body, server=self.server, peer=self.peer)
            job = functools.partial(self.front.respond, environ, keep_alive=keep_alive)
        future = self.front.loop.run_in_executor(self.front.pool, job)
        future.add_done_callback(self.answered)

    def answered(self, future: asyncio.Future[tuple[bytes, bool]]) -> None:
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return
        try:
            response, keep_alive = future.result()
        except Exception:
            LOG.exception("the app failed outside its error handlers")
            response, keep_alive = error_response(500, "internal server error"), False
        self.write(response)
        if not keep_alive or not self.front.accepting or self.late:
            self.close()
        elif self.discard:
            self.transport.resume_reading()  # the rest of the refused body, then the next request
        else:
            self.head = None
            self.next_request()

    def next_request(self) -> None:
        assert self.transport is not None
        self.started = False
        self.waiting_since = self.front.loop.time()
        self.disarm()
        self.transport.resume_reading()
        if self.buffer:
            self.advance()  # pipelined
        else:
            self.arm(self.limits.keepalive, self.close)

    # deadlines and closing

    def deadline_passed(self) -> None:
        """The request (or the first one, after the handshake) did not arrive in time."""
        self.timer = None
        if self.busy:
            self.late = True  # the app has it: answer, then close
            return
        if self.started and not self.discard:
            timeout = self.limits.client_timeout
            self.write(error_response(408, f"request not received within {timeout:g} s"))
        self.close()

    def refuse(self, status: int, reason: str) -> None:
        self.write(error_response(status, reason))
        self.close()

    def close_if_idle(self) -> None:
        if not self.started and not self.busy:
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.disarm()
        if self.transport is not None:
            self.transport.close()

    def arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self.disarm()
        self.timer = self.front.loop.call_later(seconds, callback)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: each connection is a descriptor, and
    the common soft default (1,024) is far below what ``--max-connections`` allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop: 15-25 % less server CPU per review than asyncio's (docs/benchmarks.md)."""
    return uvloop.new_event_loop()


class FrontWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker serving through :class:`Front`; settings come from the application
    object (``WebhookServer``), which carries the webhook settings and the certificates."""

    loop_factory: Callable[[], asyncio.AbstractEventLoop] = staticmethod(new_event_loop)

    def init_process(self) -> None:
        raise_open_file_limit()
        self.loop = type(self).loop_factory()
        asyncio.set_event_loop(self.loop)
        self.quick = False
        self.stopping = (
            asyncio.Event()
        )  # set by SIGTERM and friends: stop without a heartbeat's wait
        super().init_process()  # loads the app, then calls run()

    def init_signals(self) -> None:
        for number in self.SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        self.loop.add_signal_handler(signal.SIGTERM, self.graceful_stop)
        self.loop.add_signal_handler(signal.SIGINT, self.quick_stop)
        self.loop.add_signal_handler(signal.SIGQUIT, self.quick_stop)
        self.loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        self.loop.add_signal_handler(signal.SIGABRT, self.abort)

    def graceful_stop(self) -> None:
        self.alive = False
        self.stopping.set()

    def quick_stop(self) -> None:
        self.quick = True
        self.graceful_stop()

    def abort(self) -> None:
        self.alive = False
        self.cfg.worker_abort(self)
        sys.exit(1)

    def run(self) -> None:
        try:
            self.loop.run_until_complete(self.serve())
        finally:
            self.loop.close()

    async def serve(self) -> None:
        settings = self.app.settings
        front = Front(
            app=self.wsgi,
            limits=Limits(
                client_timeout=settings.client_timeout,
                keepalive=settings.keepalive,
                max_body_bytes=settings.max_body_bytes,
                max_connections=settings.max_connections,
                access_log=settings.access_log,
            ),
            threads=settings.threads,
            loop=self.loop,
            routes=direct_routes(self.wsgi),
        )
        context = listener_context(self.app.certificates)
        servers = [
            await self.loop.create_server(
                front.protocol,
                sock=listener.sock,
                ssl=context,
                ssl_handshake_timeout=settings.client_timeout,
                ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT,
                backlog=self.cfg.backlog,
            )
            for listener in self.sockets
        ]
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("parent changed, shutting down: %s", self)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), HEARTBEAT)
        for server in servers:
            server.close()
        front.stop_accepting()
        deadline = self.loop.time() + self.cfg.graceful_timeout
        unused_for = min(DRAIN_IDLE_SECONDS, self.cfg.graceful_timeout / 2)
        while front.connections and not self.quick and self.loop.time() < deadline:
            self.notify()
            front.close_idle(unused_for=unused_for)
            await asyncio.sleep(0.05)
        for connection in list(front.connections):
            connection.close()
        front.pool.shutdown(wait=not self.quick, cancel_futures=True)
