"""Two real workers (LocalBackend over SQLite + spool, served by uvicorn on loopback) and a
hub in front of them; the oracle is one LocalBackend holding every entry and packet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest

from pilotfish.api.app import create_app
from pilotfish.api.backend import LocalBackend
from pilotfish.api.live import LiveFeed
from pilotfish.hub.app import hub_app
from pilotfish.hub.backend import FederatedBackend
from pilotfish.model import Entry
from pilotfish.store.spool import PcapSpool
from pilotfish.store.sqlite import SqliteStore
from pilotfish.worker import write_stats
from tests import waiting
from tests.api.conftest import STATS, http_frames
from tests.api.served import served
from tests.store.entries import T0, make

T = TypeVar("T")
DEADLINE_S = 20.0


def worker_of(i: int) -> str:
    """Runs of three entries on worker a, two on b: interleaved unevenly in time."""
    return "a" if i % 5 < 3 else "b"


def known_entries() -> dict[str, list[Entry]]:
    """The entries each worker holds: HTTP with varied latency, errors, pods, a timestamp
    tie across workers, and unanswered DNS queries."""
    out: dict[str, list[Entry]] = {"a": [], "b": []}
    for i in range(80):
        w = worker_of(i)
        e = make(
            i,
            status=500 if i % 7 == 0 else 200,
            elapsed_us=(i * 37) % 900 + 10,
            src_pod=f"cart-{i % 3}",
            path=f"/api/items/{i % 4}",
        )
        out[w].append(msgspec.structs.replace(e, id=f"{w}-{i}", node=w))
    for w, i in (("a", 80), ("b", 81)):  # the same timestamp on both
        e = make(i, ts=T0 + 80.5, elapsed_us=5)
        out[w].append(msgspec.structs.replace(e, id=f"{w}-{i}", node=w))
    for i in (90, 91):
        e = make(i, protocol="dns", status="NXDOMAIN", path="x.shop.svc", elapsed_us=None)
        out["b"].append(msgspec.structs.replace(e, id=f"b-{i}", node="b"))
    return out


def merged_order(entries: dict[str, list[Entry]]) -> list[str]:
    """Ids newest first, ties broken by worker order (a before b): what the hub promises."""
    flat = [(e.timestamp, w, e.id) for w in ("a", "b") for e in entries[w]]
    flat.sort(key=lambda t: (-t[0], t[1]))
    return [i for _, _, i in flat]


def open_store(path: Path, entries: list[Entry]) -> SqliteStore:
    store = SqliteStore(path)
    store.add(sorted(entries, key=lambda e: e.timestamp))
    store.commit()
    return store


def open_spool(path: Path, entries: list[Entry]) -> PcapSpool:
    spool = PcapSpool(path)
    numbers = sorted(int(e.id.split("-")[1]) for e in entries if e.protocol == "http")
    spool.write([f for i in numbers for f in http_frames(i)])
    return spool


@dataclass
class Cluster:
    """What the tests reach for: URLs, the workers' backends and the oracle."""

    hub: str
    workers: dict[str, str]
    backends: dict[str, LocalBackend]
    hub_backend: FederatedBackend
    oracle: LocalBackend
    entries: dict[str, list[Entry]]
    paths: dict[str, Path]

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.hub + path, params=params, timeout=30)

    def oracle_json(self, call: Callable[[LocalBackend], Any]) -> Any:
        """The oracle's answer, through JSON as a client would see it."""

        async def run() -> Any:
            return await call(self.oracle)

        return msgspec.json.decode(msgspec.json.encode(asyncio.run(run())))


def local_backend(root: Path, name: str, entries: list[Entry]) -> LocalBackend:
    root.mkdir(parents=True, exist_ok=True)
    write_stats(root / "stats.json", STATS)
    return LocalBackend(
        open_store(root / "e.db", entries),
        open_spool(root / "spool", entries),
        LiveFeed(max_queue=100),
        stats_path=root / "stats.json",
        node=name,
    )


@contextmanager
def running_cluster(tmp_path: Path) -> Iterator[Cluster]:
    entries = known_entries()
    backends = {w: local_backend(tmp_path / w, w, entries[w]) for w in ("a", "b")}
    oracle = local_backend(tmp_path / "all", "all", entries["a"] + entries["b"])
    with ExitStack() as stack:
        urls = {
            w: f"http://127.0.0.1:{stack.enter_context(served(create_app(b, None)))}"
            for w, b in backends.items()
        }
        hub_backend = FederatedBackend([urls["a"], urls["b"]], timeout=2.0, backoff_base=0.2)
        hub_port = stack.enter_context(served(hub_app(hub_backend, None)))
        yield Cluster(
            f"http://127.0.0.1:{hub_port}",
            urls,
            backends,
            hub_backend,
            oracle,
            entries,
            {w: tmp_path / w for w in ("a", "b")},
        )
    for b in (*backends.values(), oracle):
        if b.spool is not None:
            b.spool.close()
        b.store.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Shared by a module's tests: they must not change what the workers hold."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of its own, for a test that adds entries."""
    with running_cluster(tmp_path) as c:
        yield c


def wait_for(condition: Callable[[], T], what: str, deadline_s: float = DEADLINE_S) -> T:
    """`tests.waiting.wait_for` at the pace of in-process servers (20 ms polls)."""
    return waiting.wait_for(condition, what, deadline_s, poll_s=0.02)
