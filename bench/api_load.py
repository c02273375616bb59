"""The live stream's fan-out: entries from a capture-side sender to WebSocket clients.

An API process (uvicorn, `LocalBackend` with a feed socket, as in a worker) receives entries
from a `FeedSender` in this process at a fixed offered rate for STREAM_S seconds; 1 or 20
WebSocket clients (asyncio, in a third process) subscribe to /api/stream and count what
arrives.  Per client: entries/s delivered and the share of the offered entries; drops the
server told about; entries the sender itself dropped.  Target: 20 clients at 5,000
entries/s each (a third case offers twice that, to show the ceiling).  The same clients
and QUERIES serve `bench.api_capture`, where the entries come from real captured traffic.

Bounded: every case is capped in time; processes are stopped by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tests.integration.nodes import free_port

from bench.common import table
from pilotfish.api.feedpipe import FeedSender
from pilotfish.model import Endpoint, Entry, Payload

STREAM_S = 3.0
OFFERED_PER_S = 5_000
STREAM_CASES = ((1, OFFERED_PER_S), (20, OFFERED_PER_S), (20, 2 * OFFERED_PER_S))
TICK_S = 0.01
DRAIN_S = 2.0
QUERIES = (
    ("/api/entries", {"q": "http && status_code >= 200", "limit": "1000"}),
    ("/api/stats", {"q": "http", "bucket": "1"}),
    ("/api/servicemap", {"q": ""}),
    ("/api/entries", {"q": 'path.contains("items")', "limit": "500"}),
)


_BATCH = '{"type":"entries","count":'


def sample_entry(i: int) -> Entry:
    """A typical HTTP entry (headers and a small JSON body on both sides)."""
    headers = {"host": "api.shop", "user-agent": "curl/8.5.0", "accept": "*/*"}
    return Entry(
        id=f"b-{i}",
        protocol="http",
        timestamp=1_700_000_000.0 + i / 1000,
        elapsed_us=850,
        src=Endpoint("10.213.0.2", 40_000 + i % 20_000, pod="client", namespace="default"),
        dst=Endpoint("10.213.0.3", 80, pod="web", namespace="default", service="web"),
        method="GET",
        path=f"/api/v1/items?page={i % 50}",
        status=200,
        summary=f"GET /api/v1/items?page={i % 50} -> 200",
        request=Payload(headers=headers, size=78),
        response=Payload(
            headers={"content-type": "application/json", "content-length": "97"},
            body='{"items":[{"id":1,"name":"kettle"},{"id":2,"name":"teapot"}],"count":2}',
            size=260,
        ),
        capture="afpacket",
        stream=f"b-f{i // 10}",
    )


# --- part 1: live stream fan-out ---------------------------------------------------------------


@dataclass
class StreamCase:
    clients: int
    offered: int
    seconds: float
    delivered: list[int]
    told_dropped: int
    sender_dropped: int


def _serve(data_dir: Path, port: int, sock: Path) -> None:
    from pilotfish.api.backend import LocalBackend
    from pilotfish.node import serve_api
    from pilotfish.store.sqlite import SqliteStore

    store = SqliteStore(data_dir / "entries.db", reader=True)
    backend = LocalBackend(store, feed_socket=sock)
    with contextlib.redirect_stderr(open(os.devnull, "w")):
        serve_api(backend, "127.0.0.1", port, None)


class StreamClients:
    """`count` WebSocket clients on /api/stream in a process of their own, all connected
    when the constructor returns; `results()` gives (entries, drops told) per client once
    the stream has been quiet for DRAIN_S."""

    def __init__(self, port: int, count: int) -> None:
        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_clients, args=(port, count, child), daemon=True)
        self._proc.start()
        if not self._conn.poll(30) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError("stream clients did not connect")

    def results(self, timeout: float) -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = self._conn.recv() if self._conn.poll(timeout) else []
        return got

    def close(self) -> None:
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


def _clients(port: int, count: int, conn: Connection) -> None:
    conn.send(asyncio.run(_run_clients(port, count, conn)))


async def _run_clients(port: int, count: int, conn: Connection) -> list[Any]:
    """`count` clients reading until the stream has been silent for DRAIN_S (one watchdog
    for all, so the per-message path is just a receive and a prefix check)."""
    from websockets.asyncio.client import ClientConnection, connect

    sockets: list[ClientConnection] = []
    counts = [[0, 0] for _ in range(count)]

    async def one(index: int) -> None:
        url = f"ws://127.0.0.1:{port}/api/stream"
        async with connect(url, max_size=None, compression=None) as ws:
            await ws.recv()  # hello
            sockets.append(ws)
            mine = counts[index]
            with contextlib.suppress(Exception):
                async for message in ws:
                    if message.startswith(_BATCH):
                        mine[0] += int(message[len(_BATCH) : message.index(",", len(_BATCH))])
                    else:
                        told = json.loads(message)
                        mine[1] += int(told.get("count", 0)) + int(told.get("unfiltered", 0))

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    while len(sockets) < count:
        await asyncio.sleep(0.01)
    conn.send("ready")
    last, quiet = -1, 0.0
    while quiet < DRAIN_S:
        await asyncio.sleep(0.25)
        total = sum(c[0] + c[1] for c in counts)
        quiet = 0.0 if total != last else quiet + 0.25
        last = total
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [tuple(c) for c in counts]


def stream_case(
    clients: int, offered_per_s: int = OFFERED_PER_S, seconds: float = STREAM_S
) -> StreamCase:
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="pf-bench-") as tmp:
        port, sock = free_port(), Path(tmp) / "feed.sock"
        server = ctx.Process(target=_serve, args=(Path(tmp), port, sock), daemon=True)
        server.start()
        try:
            _wait_http(f"http://127.0.0.1:{port}/readyz")
            reader = StreamClients(port, clients)
            sender = FeedSender(sock)
            entries = [sample_entry(i) for i in range(1000)]
            offered = _publish(sender, entries, offered_per_s, seconds)
            results = reader.results(seconds + 60)
            reader.close()
        finally:
            server.terminate()
            server.join(10)
    return StreamCase(
        clients,
        offered,
        seconds,
        [r[0] for r in results],
        sum(r[1] for r in results),
        sender.dropped + sender.unconnected,
    )


def _publish(sender: FeedSender, entries: list[Entry], per_s: int, seconds: float) -> int:
    """Publish at `per_s` (in TICK_S steps) for `seconds`; returns how many were offered."""
    start = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * per_s)
        while sent < due:
            sender.publish(entries[sent % len(entries)])
            sent += 1
        sender.flush()
        time.sleep(TICK_S)
    while sender.buffered:
        sender.flush()
        time.sleep(TICK_S)
    return sent


def _wait_http(url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stream_table(cases: list[StreamCase]) -> str:
    rows = []
    for c in cases:
        rates = [d / c.seconds for d in c.delivered] or [0.0]
        share = min(c.delivered, default=0) / c.offered if c.offered else 0.0
        rows.append(
            (
                c.clients,
                f"{c.offered / c.seconds:,.0f}",
                f"{min(rates):,.0f}",
                f"{sum(rates) / len(rates):,.0f}",
                f"{sum(rates):,.0f}",
                f"{share:.1%}",
                c.told_dropped,
                c.sender_dropped,
            )
        )
    return table(
        f"live stream fan-out ({STREAM_S:.0f} s per case; target 20 clients x 5,000 entries/s)",
        (
            "clients",
            "offered/s",
            "min/client/s",
            "avg/client/s",
            "total msgs/s",
            "worst share",
            "told dropped",
            "sender dropped",
        ),
        rows,
    )


def run() -> str:
    return stream_table([stream_case(n, rate) for n, rate in STREAM_CASES])


if __name__ == "__main__":
    print(run())
