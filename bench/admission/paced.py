"""A constant-rate load generator: requests evenly spaced in time, over keep-alive TLS connections.

``hey -q`` paces each of its workers separately, and they all start together, so at 500/s with
10 workers it sends bursts of 10 requests every 20 ms: a harsher pattern than an API server's.
This client sends one request every ``1/rate`` seconds (open loop: the schedule never waits for
answers) on a pool of connections, and times each from the moment it was sent, including
any wait for a free connection, so a slow server cannot hide queueing behind a slower rate.
It also reports each latency from the request's due time (``from_schedule``), which adds this
client's own lateness (its event loop, GIL and garbage collector): the Go client in ``pacer/``
reports the same keys with far less of it.
Bounded: ``rate x seconds`` requests at most, each with a timeout; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Outcome:
    latencies_ms: list[float]
    errors: int
    late_sends: int
    seconds: float
    from_due_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        count = len(self.latencies_ms)
        from_send = percentiles(self.latencies_ms)
        return {
            "client": "python",
            "requests": count,
            "rps": count / self.seconds if self.seconds else 0.0,
            **from_send,
            "errors": self.errors,
            "late_sends": self.late_sends,
            "from_send": from_send,
            "from_schedule": percentiles(self.from_due_ms),
        }


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest rank, the same in the Go client."""
    ordered = sorted(values)
    if not ordered:
        return dict.fromkeys(("p50", "p90", "p99", "p999", "max"), float("nan"))

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999), "max": at(1)}


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a prepared request and reads the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return status, body


async def run(
    url: str, *, body: bytes, rate: int, seconds: float, connections: int, cafile: Path
) -> Outcome:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    context = ssl.create_default_context(cafile=str(cafile))
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        connection = Connection(reader, writer)
        await connection.exchange(request)  # a silent connection would hold a server thread
        idle.put_nowait(connection)
    outcome = Outcome([], 0, 0, seconds)
    loop = asyncio.get_running_loop()

    async def one(due: float) -> None:
        started = loop.time()  # not the due time: a late client timer is not the server's fault
        connection = await idle.get()  # waiting for a free connection is: it counts
        try:
            status, answer = await asyncio.wait_for(connection.exchange(request), timeout=5)
            ok = status == 200 and json.loads(answer)["response"]["allowed"] is True
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, KeyError):
            ok = False
        finally:
            idle.put_nowait(connection)  # a broken one fails its next exchange, counted there
        if ok:
            done = loop.time()
            outcome.latencies_ms.append((done - started) * 1000)
            outcome.from_due_ms.append((done - due) * 1000)
        else:
            outcome.errors += 1

    total = int(rate * seconds)
    interval = 1.0 / rate
    start = loop.time() + 0.05
    tasks = []
    for index in range(total):
        due = start + index * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.001:
            outcome.late_sends += 1
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    outcome.seconds = loop.time() - start
    while not idle.empty():
        idle.get_nowait().writer.close()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--cafile", type=Path, required=True)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    started = time.monotonic()
    cpu_before = cpu_seconds()
    outcome = asyncio.run(
        run(
            args.url,
            body=args.body.read_bytes(),
            rate=args.rate,
            seconds=args.seconds,
            connections=args.connections,
            cafile=args.cafile,
        )
    )
    cpu = cpu_seconds() - cpu_before
    requests = max(int(args.rate * args.seconds), 1)
    print(
        json.dumps(
            outcome.summary()
            | {
                "wall": time.monotonic() - started,
                "client_cpu_seconds": cpu,
                "client_cpu_ms_per_request": cpu * 1000 / requests,
            }
        )
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
