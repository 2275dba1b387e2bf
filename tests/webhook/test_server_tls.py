"""The served webhook: a real ``mamori webhook`` process over TLS on 127.0.0.1.

What only a running server can show: the certificate verifies against its CA, old TLS is
refused, bad requests get 400 and the server keeps serving, a new certificate is picked up from
disk with no failed request in between, metrics add up across worker processes, logs are JSON
without key material, and SIGTERM lets a request in flight finish.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509

from tests.helpers import wait_for
from tests.webhook.reviews import (
    TRUSTED_IMAGE,
    UNTRUSTED_IMAGE,
    pod_spec,
    policy_document,
    workload,
)
from tests.webhook.reviews import review as make_review
from tests.webhook.served import Pki, Served, metric, start_webhook, write_policy

POLICY = policy_document("production", trustedRegistries=["ghcr.io/acme"])
CLIENT_TIMEOUT = 1  # seconds; the served test server runs 2 workers x 2 threads


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.write_initial()
    return pki


@pytest.fixture(scope="module")
def served(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("webhook")
    policy_file = write_policy(directory / "policy.yaml", POLICY)
    server = start_webhook(
        pki=pki,
        policy_file=policy_file,
        log_file=directory / "webhook.log",
        extra=["--client-timeout", str(CLIENT_TIMEOUT)],
    )
    yield server
    assert server.stop() == 0, server.log()


def post(session: requests.Session, served: Served, document: Any) -> requests.Response:
    return session.post(f"{served.url}/validate", json=document, timeout=10)


def allowed(session: requests.Session, served: Served, obj: dict[str, Any]) -> bool:
    response = post(session, served, make_review(obj))
    assert response.status_code == 200, response.text
    return bool(response.json()["response"]["allowed"])


def served_serial(served: Served) -> int:
    context = ssl.create_default_context(cafile=str(served.ca_file))
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def handshake(served: Served, *, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 enum members
        context = ssl.create_default_context(cafile=str(served.ca_file))
        context.minimum_version = minimum
        context.maximum_version = maximum
        if maximum < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old TLS at all
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


def test_reviews_over_verified_tls(served: Served) -> None:
    session = served.session()
    assert allowed(session, served, workload("Deployment")) is True
    response = post(session, served, make_review(workload("Pod", spec=pod_spec(UNTRUSTED_IMAGE))))
    answer = response.json()["response"]
    assert answer["allowed"] is False
    assert answer["status"]["message"].startswith('mamori denied Pod "web": 1 violation')
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{served.url}/healthz", timeout=5)  # system CAs do not know the test CA


def test_tls_12_and_13_work_and_11_is_refused(served: Served) -> None:
    assert handshake(served, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2) == (
        "TLSv1.2"
    )
    assert handshake(served, minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3) == (
        "TLSv1.3"
    )
    with pytest.raises(ssl.SSLError) as refused:
        handshake(served, minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1)
    # The server refuses: its alert, or (asyncio's TLS does not flush a handshake's alert) its
    # closing the connection on the ClientHello; never the client declining to try.
    assert "alert protocol version" in str(refused.value) or isinstance(
        refused.value, ssl.SSLEOFError
    )


def test_garbage_gets_400_and_the_server_keeps_serving(served: Served) -> None:
    session = served.session()
    garbage = session.post(
        f"{served.url}/validate",
        data=b"\x00\xffnot json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert garbage.status_code == 400
    assert garbage.json()["error"].startswith("body is not valid JSON")
    wrong_type = session.post(f"{served.url}/validate", data=b"{}", timeout=10)
    assert wrong_type.status_code == 400
    huge = session.post(
        f"{served.url}/validate",
        data=b"{" + b" " * (5 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert huge.status_code == 400
    assert huge.json() == {"error": "request body is larger than 4194304 bytes (--max-body-bytes)"}
    for _ in range(5):  # same keep-alive session: nothing left half-read on the connection
        assert allowed(session, served, workload("Pod")) is True


def test_stalled_clients_cannot_hold_the_request_threads(served: Served) -> None:
    context = ssl.create_default_context(cafile=str(served.ca_file))
    stalled = []
    for index in range(6):  # more than the 4 request threads
        raw = socket.create_connection(("127.0.0.1", served.port), timeout=10)
        tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        if index % 2:
            tls.sendall(b"POST /validate HTTP/1.1\r\nHost: 127")  # half a request, then silence
        stalled.append(tls)
    try:
        started = time.monotonic()
        assert allowed(served.session(), served, workload("Pod")) is True
        assert time.monotonic() - started < 5 * CLIENT_TIMEOUT + 5
        for index, tls in enumerate(stalled):
            tls.settimeout(10)
            reply = read_to_end(tls)  # the server hung up on the staller
            if index % 2:  # half a request: told why first
                assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), reply
                assert reply.endswith(b'{"error":"request not received within 1 s"}'), reply
            else:
                assert reply == b""
    finally:
        for tls in stalled:
            tls.close()


def read_to_end(tls: ssl.SSLSocket) -> bytes:
    reply = b""
    while chunk := tls.recv(65536):
        reply += chunk
    return reply


def test_metrics_add_up_across_workers(served: Served) -> None:
    def scrape() -> str:
        return served.session().get(f"{served.url}/metrics", timeout=10).text

    before = scrape()
    good, bad = workload("Job"), workload("Job", spec=pod_spec(TRUSTED_IMAGE, UNTRUSTED_IMAGE))
    for _ in range(6):  # new connections: spread over both workers
        assert allowed(served.session(), served, good) is True
        assert allowed(served.session(), served, bad) is False
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    requests_total = "mamori_admission_requests_total"
    assert delta(requests_total, decision="allowed", kind="Job", operation="CREATE") == 6
    assert delta(requests_total, decision="denied", kind="Job", operation="CREATE") == 6
    violations = "mamori_admission_violations_total"
    assert delta(violations, rule="trusted-registry", policy="production") == 6
    assert delta("mamori_admission_duration_seconds_count") == 12
    assert delta("mamori_admission_duration_seconds_bucket", le="0.1") == 12


def test_certificate_rotation_without_a_failed_request(served: Served, pki: Pki) -> None:
    old_serial = served_serial(served)
    failures: list[str] = []
    done = threading.Event()
    counted = [0]

    def traffic() -> None:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline and counted[0] < 5000:
            try:
                with served.session() as session:  # a new connection, so a new handshake
                    if not allowed(session, served, workload("Pod")):
                        failures.append("denied")
            except Exception as error:
                failures.append(repr(error))
            counted[0] += 1

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        wait_for(lambda: counted[0] >= 5, timeout=30, message="traffic before rotation")
        new = pki.issue()
        # Half-written pair: the new key next to the old certificate. It must not be served.
        pki.key_file.write_bytes(new.key_pem)
        seen = counted[0]
        wait_for(
            lambda: counted[0] >= seen + 5, timeout=30, message="traffic on a half-written pair"
        )
        assert "keeping the previous TLS certificate" in served.log()
        assert served_serial(served) == old_serial
        pki.cert_file.write_bytes(new.certificate_pem)
        new_serial = x509.load_pem_x509_certificate(new.certificate_pem).serial_number
        wait_for(
            lambda: served_serial(served) == new_serial, timeout=30, message="new serial served"
        )
        seen = counted[0]
        wait_for(lambda: counted[0] >= seen + 5, timeout=30, message="traffic after rotation")
    finally:
        done.set()
        worker.join(30)
    assert failures == []
    assert counted[0] >= 15


def test_logs_are_json_and_never_hold_the_key(served: Served, pki: Pki) -> None:
    records = served.log_records()  # raises if any line is not JSON
    assert any(r["message"].startswith("serving TLS certificate serial") for r in records)
    assert {"time", "level", "logger", "pid", "message"} <= set(records[0])
    log = served.log()
    key_body = pki.key_file.read_text().splitlines()[1]
    assert key_body not in log
    assert "PRIVATE KEY" not in log


def test_sigterm_lets_the_request_in_flight_finish(pki: Pki, tmp_path: Path) -> None:
    policy_file = write_policy(tmp_path / "policy.yaml", POLICY)
    server = start_webhook(pki=pki, policy_file=policy_file, log_file=tmp_path / "webhook.log")
    body = json.dumps(make_review(workload("Pod"))).encode()
    head = (
        f"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    try:
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(head + body[:100])  # the request is in flight
            seen = len(server.log())
            server.process.send_signal(15)
            wait_for(
                lambda: "Handling signal: term" in server.log()[seen:],
                timeout=10,
                message="SIGTERM handled",
            )
            tls.sendall(body[100:])
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}}"):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        assert b'"allowed":true' in reply
        assert server.process.wait(30) == 0
    finally:
        server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_sigterm_keeps_an_idle_keep_alive_connection_for_its_next_request(
    pki: Pki, tmp_path: Path
) -> None:
    """The API server keeps writing on its pooled connections to a pod that is stopping: the
    next request on one must be answered (with ``Connection: close``), not met with a close.
    Closing idle connections at SIGTERM failed an admission with EOF on a real node."""
    policy_file = write_policy(tmp_path / "policy.yaml", POLICY)
    # One worker: the one that answers below has surely booted. (A worker still booting when
    # SIGTERM arrives misses it, keeping the listener open until the graceful timeout.)
    server = start_webhook(
        pki=pki,
        policy_file=policy_file,
        log_file=tmp_path / "webhook.log",
        extra=("--workers", "1"),
    )
    body = json.dumps(make_review(workload("Pod"))).encode()
    request = (
        f"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    try:
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(request)
            first = _read_response(tls)
            assert first.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in first.lower()
            server.process.send_signal(15)
            # Every worker has stopped listening (its stop has begun) once connects are refused.
            wait_for(
                lambda: _refused(server.port),
                timeout=10,
                interval=0.01,
                message="the listeners closed",
            )
            tls.sendall(request)
            second = _read_response(tls)
        assert second.startswith(b"HTTP/1.1 200 "), second[:200]
        assert b'"allowed":true' in second
        assert b"connection: close" in second.lower()
        assert server.process.wait(30) == 0
    finally:
        server.stop()


def _read_response(tls: ssl.SSLSocket) -> bytes:
    """One whole HTTP/1.1 response (head and Content-Length body); b"" if the peer closed."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = tls.recv(65536)
        if not chunk:
            return reply
        reply += chunk
    head, _, rest = reply.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False
