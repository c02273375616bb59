"""What the API asks of a node: the `Backend` protocol and `LocalBackend`, one worker's data.

The app only ever talks to a `Backend`.  Its methods are async and take and return plain
data (query text, msgspec Structs, dicts), so a hub can implement the same protocol by
asking its workers over HTTP and WebSocket.  Queries arrive as text that the app has
already validated; each backend compiles them itself.

`LocalBackend` serves one worker: its entry store and packet spool (written by the capture
process; see `store.base`), the counters that process writes every second (`stats.json`)
and the live feed.  Store and spool calls block (SQLite, files): they run one at a time on
one dedicated thread, so the event loop never waits on them and the store's connection is
never used by two threads at once.  The live streams go first: while the event loop runs
more than `LAG_S` late (the process is short of CPU: a cgroup quota, a busy node), each
store question waits that long (at most `MAX_YIELD_S`) before it is asked, so queries slow
down before live clients lose entries (`api.lag`).  A PCAP export is written to a spooled
temporary file (in memory up to `EXPORT_MEMORY` bytes, on disk beyond) and streamed in
chunks; at most
`MAX_EXPORT_STREAMS` flows go into one export.  With `feed_socket`, a `FeedReceiver`
listens there while the app runs and feeds the live feed from the capture process.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from pilotfish.api.feedpipe import FeedReceiver
from pilotfish.api.lag import LAG_S, MAX_YIELD_S, LoopLag
from pilotfish.api.live import LiveFeed, Subscription
from pilotfish.api.params import ApiError
from pilotfish.capture.pcapfile import PcapWriter
from pilotfish.model import Entry
from pilotfish.query import Query, compile_query
from pilotfish.store.base import Bucket, EntryStore, PacketSpool, Page, ServiceMap
from pilotfish.worker import read_stats

T = TypeVar("T")

EXPORT_MEMORY = 8 * 1024 * 1024
EXPORT_CHUNK = 256 * 1024
MAX_EXPORT_STREAMS = 10_000
_LINKTYPE_ETHERNET = 1


class Backend(Protocol):
    """Everything the app needs; all arguments and results are JSON-serialisable."""

    async def entries(
        self, query: str, limit: int, before: str | None, after: str | None
    ) -> Page: ...

    async def entry(self, entry_id: str) -> Entry | None: ...

    async def stats(
        self, query: str, bucket_s: float, group_by: str, latency: bool = False
    ) -> list[Bucket]:
        """Buckets; with `latency`, each carries its latency histogram too."""
        ...

    async def servicemap(self, query: str, latency: bool = False) -> ServiceMap: ...

    def export_pcap(self, query: str) -> AsyncIterator[bytes]:
        """The pcap file of the matching flows' packets, in chunks."""
        ...

    async def subscribe(self, query: str) -> Subscription:
        """Live entries matching `query`; close the subscription to leave."""
        ...

    async def metrics(self) -> dict[str, Any]:
        """Counters by stage, in the shape `api.metrics` documents."""
        ...

    async def health(self) -> dict[str, Any]:
        """At least {"ready": bool}."""
        ...

    async def workers(self) -> list[dict[str, Any]]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def _compiled(text: str) -> Query | None:
    return compile_query(text) if text.strip() else None


class LocalBackend:
    """One node: its store, spool, capture counters and live feed (module docstring)."""

    def __init__(
        self,
        store: EntryStore,
        spool: PacketSpool | None = None,
        feed: LiveFeed | None = None,
        *,
        stats_path: Path | None = None,
        node: str = "",
        extra_metrics: Callable[[], dict[str, Any]] | None = None,
        feed_socket: Path | None = None,
    ) -> None:
        self.store = store
        self.spool = spool
        self.feed = feed if feed is not None else LiveFeed()
        self.stats_path = stats_path
        self.node = node
        self._extra_metrics = extra_metrics
        self.receiver = None if feed_socket is None else FeedReceiver(feed_socket, self.feed)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="pilotfish-store")
        self.lag = LoopLag()
        self._lag_task: asyncio.Task[None] | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _query(self, fn: Callable[..., T], *args: Any) -> T:
        """A store question, asked after the live streams had their turn: while the event
        loop runs late (the process is short of CPU), each question first waits that long."""
        late = self.lag.late
        if late > LAG_S:
            self.lag.yielded += 1
            await asyncio.sleep(min(late, MAX_YIELD_S))
        return await self._run(fn, *args)

    async def start(self) -> None:
        self._lag_task = asyncio.get_running_loop().create_task(self.lag.watch())
        self.feed.bind(asyncio.get_running_loop())
        if self.receiver is not None:
            await self.receiver.start()

    async def close(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
        if self.receiver is not None:
            await self.receiver.stop()
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def entries(self, query: str, limit: int, before: str | None, after: str | None) -> Page:
        for name, cursor in (("before", before), ("after", after)):
            if cursor is not None and not (
                cursor.isascii() and cursor.isdigit() and len(cursor) <= 18
            ):
                raise ApiError(400, f"{name} must be a cursor returned by this API", parameter=name)
        return await self._query(self.store.query, _compiled(query), limit, before, after)

    async def entry(self, entry_id: str) -> Entry | None:
        return await self._query(self.store.get, entry_id)

    async def stats(
        self, query: str, bucket_s: float, group_by: str, latency: bool = False
    ) -> list[Bucket]:
        return await self._query(self.store.stats, _compiled(query), bucket_s, group_by, latency)

    async def servicemap(self, query: str, latency: bool = False) -> ServiceMap:
        return await self._query(self.store.servicemap, _compiled(query), latency)

    async def export_pcap(self, query: str) -> AsyncIterator[bytes]:
        out = await self._query(self._export, _compiled(query))
        try:
            while chunk := await self._run(out.read, EXPORT_CHUNK):
                yield chunk
        finally:
            out.close()

    def _export(self, query: Query | None) -> IO[bytes]:
        out: Any = tempfile.SpooledTemporaryFile(max_size=EXPORT_MEMORY)  # noqa: SIM115
        try:
            streams = self.store.streams(query, MAX_EXPORT_STREAMS)
            if self.spool is not None:
                self.spool.export(streams, out)
            else:
                PcapWriter(out, _LINKTYPE_ETHERNET).close()  # an empty capture rather than nothing
        except BaseException:
            out.close()
            raise
        out.seek(0)
        result: IO[bytes] = out
        return result

    async def subscribe(self, query: str) -> Subscription:
        q = _compiled(query)
        return self.feed.subscribe(None if q is None else q.match, query)

    async def metrics(self) -> dict[str, Any]:
        return await self._run(self._metrics)

    def _metrics(self) -> dict[str, Any]:
        stats = read_stats(self.stats_path) if self.stats_path is not None else {}
        stats.setdefault("store", {})["bytes"] = self.store.size_bytes()
        if self.spool is not None:
            stats.setdefault("spool", {})["bytes"] = self.spool.size_bytes()
        stats["api"] = {"late_ms": round(self.lag.late * 1000, 1), "yields": self.lag.yielded}
        stats["websocket"] = {
            "clients": self.feed.clients,
            "dropped": self.feed.dropped(),
            "overflow": self.feed.overflow,
            "refused": self.feed.refused,
        }
        if self.receiver is not None:
            stats["feed_receiver"] = self.receiver.counters()
        if self._extra_metrics is not None:
            stats.update(self._extra_metrics())
        return stats

    async def health(self) -> dict[str, Any]:
        return {"ready": True, "node": self.node, "clients": self.feed.clients}

    async def workers(self) -> list[dict[str, Any]]:
        return [{"node": self.node, **await self.health()}]
