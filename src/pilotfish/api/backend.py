"""What the API asks of a node: the `Backend` protocol and `LocalBackend`, one worker's data.

`LocalBackend` reads the worker's store (possibly written by another process), its packet
spool and the counters the capture process writes every second, and owns the live feed.
Its methods block (SQLite, files): the app runs them in worker threads.  A hub will
implement the same protocol by asking its workers over HTTP.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from pilotfish.api.live import LiveFeed
from pilotfish.model import Entry
from pilotfish.store.base import Bucket, Page, Query, ServiceMap
from pilotfish.store.spool import PcapSpool
from pilotfish.store.sqlite import SqliteStore
from pilotfish.worker import read_stats


class Backend(Protocol):
    feed: LiveFeed

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def entries(
        self, query: Query | None, limit: int, before: str | None, after: str | None
    ) -> Page: ...

    def entry(self, entry_id: str) -> Entry | None: ...

    def stats(self, query: Query | None, bucket_s: float, group_by: str) -> list[Bucket]: ...

    def servicemap(self, query: Query | None) -> ServiceMap: ...

    def export_pcap(self, query: Query | None) -> bytes: ...

    def metrics(self) -> dict[str, Any]: ...

    def ready(self) -> bool: ...


class LocalBackend:
    """One node: its store, spool, capture counters and live feed.

    The store's connection is not thread-safe: `call` runs every blocking method on one
    dedicated thread, in order.
    """

    def __init__(
        self,
        store: SqliteStore,
        feed: LiveFeed,
        spool: PcapSpool | None = None,
        stats_path: Path | None = None,
    ) -> None:
        self.store = store
        self.feed = feed
        self.spool = spool
        self.stats_path = stats_path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="pilotfish-store")

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking method on the backend's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def entries(
        self, query: Query | None, limit: int, before: str | None, after: str | None
    ) -> Page:
        return self.store.query(query, limit, before, after)

    def entry(self, entry_id: str) -> Entry | None:
        return self.store.get(entry_id)

    def stats(self, query: Query | None, bucket_s: float, group_by: str) -> list[Bucket]:
        return self.store.stats(query, bucket_s, group_by)

    def servicemap(self, query: Query | None) -> ServiceMap:
        return self.store.servicemap(query)

    def export_pcap(self, query: Query | None) -> bytes:
        out = io.BytesIO()
        if self.spool is not None:
            self.spool.export(self.store.streams(query), out)
        return out.getvalue()

    def metrics(self) -> dict[str, Any]:
        stats = read_stats(self.stats_path) if self.stats_path is not None else {}
        stats.setdefault("store", {})["bytes"] = self.store.size_bytes()
        stats["websocket"] = {
            "clients": self.feed.clients,
            "dropped": self.feed.dropped(),
            "overflow": self.feed.overflow,
        }
        return stats

    def ready(self) -> bool:
        return True
