"""Hold N slow or silent connections open against a server, reopening each one it closes.

The mix (of 200): 50 plain TCP connections that never send a ClientHello, 30 that send half a
ClientHello, 60 TLS connections dribbling one header byte every 2 s, 40 that send a review's
head and 100 bytes of its body and stall, 20 that declare a 5 MiB body (over the 4 MiB limit)
and stall after 1 KB. An attacker reconnects when dropped, so this does too: the count stays at
N for as long as it runs. Prints ``open`` once every connection has been tried, then runs
until SIGTERM; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
from pathlib import Path

MIX = {"silent": 50, "half-handshake": 30, "dribble": 60, "stalled-body": 40, "over-long": 20}
DRIBBLE_EVERY = 2.0
CONNECT_TIMEOUT = 5.0


def client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="bench")
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server's answer
        tls.do_handshake()
    return outgoing.read()


class SlowLoad:
    def __init__(self, port: int, context: ssl.SSLContext, body: bytes) -> None:
        self.port = port
        self.context = context
        self.hello = client_hello()
        self.review = (
            "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body[:100]
        self.over_long = (
            (
                "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {5 * 1024 * 1024}\r\n\r\n"
            ).encode()
            + b"{"
            + b" " * 1000
        )
        self.opened = 0
        self.reopened = 0
        self.failed = 0

    async def hold(self, kind: str, ready: asyncio.Event) -> None:
        first = True
        while True:
            try:
                await self.one(kind, ready if first else None)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
                self.failed += 1
            if first:
                first = False
                ready.set()
            else:
                self.reopened += 1
            await asyncio.sleep(0.05)

    async def one(self, kind: str, ready: asyncio.Event | None) -> None:
        tls = kind not in ("silent", "half-handshake")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                self.port,
                ssl=self.context if tls else None,
                server_hostname="127.0.0.1" if tls else None,
                ssl_handshake_timeout=CONNECT_TIMEOUT if tls else None,
            ),
            CONNECT_TIMEOUT + 1,
        )
        self.opened += 1
        if ready is not None:
            ready.set()
        try:
            if kind == "half-handshake":
                writer.write(self.hello[: len(self.hello) // 2])
            elif kind == "stalled-body":
                writer.write(self.review)
            elif kind == "over-long":
                writer.write(self.over_long)
            elif kind == "dribble":
                writer.write(b"POST /validate HTTP/1.1\r\n")
                while not reader.at_eof():
                    await asyncio.sleep(DRIBBLE_EVERY)
                    writer.write(b"X")
                    await writer.drain()
            await reader.read()  # until the server hangs up
        finally:
            writer.close()


async def run(args: argparse.Namespace) -> None:
    context = ssl.create_default_context(cafile=str(args.cafile))
    load = SlowLoad(args.port, context, args.body.read_bytes())
    scale = args.connections / sum(MIX.values())
    tasks, readies = [], []
    for kind, count in MIX.items():
        for _ in range(round(count * scale)):
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(load.hold(kind, ready)))
    await asyncio.gather(*(ready.wait() for ready in readies))
    print(f"open {load.opened} failed {load.failed}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(f"reopened {load.reopened} failed {load.failed}", flush=True)
    for task in tasks:
        task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cafile", type=Path, required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
