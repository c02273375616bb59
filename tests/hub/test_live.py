"""Live fan-in from real workers: a worker that is down when the client subscribes is
retried with backoff, the client is told it went and came back, entries then flow."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import msgspec

from pilotfish.api.app import create_app
from pilotfish.api.live import LiveFeed
from pilotfish.hub.client import WorkerClient
from pilotfish.hub.live import FanIn
from tests.api.served import served
from tests.hub.conftest import local_backend
from tests.store.entries import make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_worker_that_comes_late_joins_the_stream(tmp_path: Path) -> None:
    port = _free_port()
    worker = local_backend(tmp_path / "w", "w", [])

    async def scenario() -> tuple[list[object], list[str], dict[str, int]]:
        sub = LiveFeed().subscribe(None, "http")
        client = WorkerClient(f"http://127.0.0.1:{port}")
        fan = FanIn([client], "http", open_timeout=1, backoff_base=0.05, backoff_max=0.2)
        fan.add(sub)
        fan.start()
        while not sub.notices:
            await asyncio.sleep(0.01)
        notices: list[object] = [sub.notices.popleft()]
        with served(create_app(worker, None), port=port):
            assert await fan.wait_connected(10)
            for k in range(5):
                worker.feed.publish(msgspec.structs.replace(make(k), id=f"w-{k}"))
            worker.feed.publish(make(9, protocol="dns", status="NOERROR"))  # filtered out
            got = []
            while len(got) < 5:
                entry = await sub.get(timeout=10)
                assert entry is not None
                got.append(entry.id)
            notices += list(sub.notices)
            await fan.aclose()
        await client.close()
        return notices, got, fan.counters

    notices, got, counters = asyncio.run(scenario())
    assert notices[0] == {
        "worker": f"http://127.0.0.1:{port}",
        "state": "down",
        "error": notices[0]["error"],  # type: ignore[index]
    }
    assert {"worker": f"http://127.0.0.1:{port}", "state": "up"} in notices
    assert got == [f"w-{k}" for k in range(5)] and counters["reconnects"] >= 1
    worker.store.close()
    assert worker.spool is not None
    worker.spool.close()


def test_a_slow_hub_client_costs_its_queue_bound_and_hears_of_every_drop(tmp_path: Path) -> None:
    worker = local_backend(tmp_path / "w", "w", [])

    async def scenario(port: int) -> tuple[int, int, int]:
        sub = LiveFeed(max_queue=3).subscribe(None, "")
        client = WorkerClient(f"http://127.0.0.1:{port}")
        fan = FanIn([client], "")
        fan.add(sub)
        fan.start()
        assert await fan.wait_connected(10)
        for k in range(40):  # the hub's client reads nothing meanwhile
            worker.feed.publish(msgspec.structs.replace(make(k), id=f"w-{k}"))
        while sub.offered < 40:
            await asyncio.sleep(0.01)
        pending, dropped = sub.pending, sub.dropped
        await fan.aclose()
        await client.close()
        return pending, dropped, sub.offered

    with served(create_app(worker, None)) as port:
        assert asyncio.run(scenario(port)) == (3, 37, 40)
    worker.store.close()
    assert worker.spool is not None
    worker.spool.close()


def test_drops_a_worker_reports_reach_the_hub_client_exactly(tmp_path: Path) -> None:
    worker = local_backend(tmp_path / "w", "w", [])
    worker.feed.max_queue = 1  # the worker's own queue for the hub overflows at once

    async def scenario(port: int) -> tuple[int, int, int]:
        sub = LiveFeed(max_queue=1000).subscribe(None, "")
        client = WorkerClient(f"http://127.0.0.1:{port}")
        fan = FanIn([client], "")
        fan.add(sub)
        fan.start()
        assert await fan.wait_connected(10)
        for k in range(200):
            worker.feed.publish(msgspec.structs.replace(make(k), id=f"w-{k}"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while sub.offered < 200 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        result = (sub.offered, sub.dropped, sub.pending)
        await fan.aclose()
        await client.close()
        return result

    with served(create_app(worker, None)) as port:
        offered, dropped, pending = asyncio.run(scenario(port))
    assert offered == 200 and dropped + pending == 200 and dropped > 0
    worker.store.close()
    assert worker.spool is not None
    worker.spool.close()


def test_entries_a_worker_lost_before_filtering_reach_the_hub_client(tmp_path: Path) -> None:
    worker = local_backend(tmp_path / "w", "w", [])

    async def scenario(port: int) -> tuple[int, int]:
        sub = LiveFeed().subscribe(None, "http")
        client = WorkerClient(f"http://127.0.0.1:{port}")
        fan = FanIn([client], "http")
        fan.add(sub)
        fan.start()
        assert await fan.wait_connected(10)
        worker.feed.note_lost(6)  # e.g. the worker's capture side could not hand them over
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not sub.unfiltered and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await fan.aclose()
        await client.close()
        return sub.unfiltered, sub.dropped

    with served(create_app(worker, None)) as port:
        assert asyncio.run(scenario(port)) == (6, 0)
    worker.store.close()
    assert worker.spool is not None
    worker.spool.close()
