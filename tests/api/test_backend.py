"""LocalBackend: the store's answers off the event loop, PCAP export in chunks, metrics merged
from the capture side's stats file, live subscriptions compiled from query text."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pilotfish.api import backend as backend_module
from pilotfish.api.backend import Backend, LocalBackend
from pilotfish.api.lag import MAX_YIELD_S
from pilotfish.store.sqlite import SqliteStore
from tests.api.conftest import HTTP_ENTRIES
from tests.store.entries import make


def test_reads_come_from_the_store(backend: LocalBackend) -> None:
    async def scenario() -> None:
        page = await backend.entries("http", 3, None, None)
        assert [e.id for e in page.entries] == ["n-49", "n-48", "n-47"]
        assert (await backend.entry("n-1")) is not None and (await backend.entry("zz")) is None
        buckets = await backend.stats("", 3600.0, "protocol")
        assert sum(b.count for b in buckets) == HTTP_ENTRIES + 1
        smap = await backend.servicemap("dns")
        assert [e.protocol for e in smap.edges] == ["dns"]
        assert (await backend.workers())[0]["node"] == "n"
        assert (await backend.health())["ready"] is True

    asyncio.run(scenario())


def test_pcap_export_streams_in_chunks(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> list[bytes]:
        return [c async for c in backend.export_pcap("")]

    monkeypatch.setattr(backend_module, "EXPORT_CHUNK", 1000)
    chunks = asyncio.run(scenario())
    data = b"".join(chunks)
    assert len(chunks) > 1 and all(len(c) <= 1000 for c in chunks)
    assert data[:4] == b"\xd4\xc3\xb2\xa1"  # little-endian microsecond pcap


def test_without_a_spool_the_export_is_an_empty_capture(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "e.db")
    try:
        b = LocalBackend(store)

        async def scenario() -> bytes:
            return b"".join([c async for c in b.export_pcap("")])

        assert len(asyncio.run(scenario())) == 24  # the pcap file header alone
    finally:
        store.close()


def test_metrics_merge_stats_store_spool_and_feed(backend: LocalBackend) -> None:
    m = asyncio.run(backend.metrics())
    assert m["capture"]["received"] == 1234 and m["store"]["bytes"] > 0
    assert m["spool"]["bytes"] > 0
    assert m["websocket"] == {"clients": 0, "dropped": 0, "overflow": 0, "refused": 0}


def test_store_questions_wait_while_the_loop_runs_late(backend: LocalBackend) -> None:
    async def asked() -> float:
        start = time.monotonic()
        await backend.entries("http", 1, None, None)
        return time.monotonic() - start

    backend.lag.late = 0.0  # on time: asked at once
    assert asyncio.run(asked()) < 0.15 and backend.lag.yielded == 0
    backend.lag.late = 0.15  # no watch task runs here, so it stays this late
    assert asyncio.run(asked()) >= 0.15 and backend.lag.yielded == 1
    backend.lag.late = 10.0  # at most MAX_YIELD_S
    assert asyncio.run(asked()) < MAX_YIELD_S + 0.2 and backend.lag.yielded == 2
    metrics = asyncio.run(backend.metrics())
    assert metrics["api"] == {"late_ms": 10000.0, "yields": 2}


def test_missing_or_broken_stats_file_reads_as_empty(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "e.db")
    (tmp_path / "s.json").write_bytes(b"{broken")
    try:
        b = LocalBackend(store, stats_path=tmp_path / "s.json", extra_metrics=lambda: {"x": 1})
        m = asyncio.run(b.metrics())
        assert "capture" not in m and m["x"] == 1 and m["store"]["bytes"] > 0
    finally:
        store.close()


def test_subscriptions_filter_with_the_query_text(backend: LocalBackend) -> None:
    async def scenario() -> None:
        as_protocol: Backend = backend
        await as_protocol.start()
        sub = await as_protocol.subscribe("status_code >= 500")
        backend.feed.publish(make(1, status=200))
        backend.feed.publish(make(2, status=502))
        entry = await asyncio.wait_for(sub.get(), 5)
        assert entry is not None and entry.id == "n-2" and sub.query == "status_code >= 500"
        sub.close()
        assert backend.feed.clients == 0
        await as_protocol.close()

    asyncio.run(scenario())


def test_a_feed_socket_carries_the_capture_process_entries(
    backend: LocalBackend, tmp_path: Path
) -> None:
    from pilotfish.api.feedpipe import FeedSender

    b = LocalBackend(backend.store, feed_socket=tmp_path / "feed.sock", node="n")

    async def scenario() -> None:
        await b.start()
        sub = await b.subscribe("")
        sender = FeedSender(tmp_path / "feed.sock")
        sender.publish(make(7))
        sender.flush()
        entry = await asyncio.wait_for(sub.get(), 5)
        assert entry is not None and entry.id == "n-7"
        assert (await b.metrics())["feed_receiver"]["received"] == 1
        sender.close()
        await b.close()
        assert not (tmp_path / "feed.sock").exists()

    asyncio.run(scenario())
