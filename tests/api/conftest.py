"""Fixtures for the API tests: a real SQLite store and packet spool holding known traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotfish.api.backend import LocalBackend
from pilotfish.api.live import LiveFeed
from pilotfish.model import Frame
from pilotfish.store.spool import PcapSpool
from pilotfish.store.sqlite import SqliteStore
from pilotfish.worker import write_stats
from tests.decode.frames import ethernet, ipv4, tcp
from tests.store.entries import T0, make

CLIENT, SERVER = bytes([10, 1, 0, 1]), bytes([10, 2, 0, 1])
HTTP_ENTRIES = 50  # n-0 .. n-49; every tenth is a 500 on /api/slow


def http_frames(i: int) -> list[Frame]:
    """Request and response packets of entry n-i's flow (10.1.0.1:40000+i <-> 10.2.0.1:80)."""
    port, ts = 40_000 + i, T0 + i
    out = []
    for k, (sport, dport, src, dst) in enumerate(
        ((port, 80, CLIENT, SERVER), (80, port, SERVER, CLIENT))
    ):
        data = ethernet(ipv4(tcp(sport, dport, b"x" * 10), src=src, dst=dst))
        out.append((ts + k * 0.0005, 1, data, len(data)))
    return out


STATS = {
    "capture": {"received": 1234, "dropped": 5, "if_dropped": 1, "extra": {"ring_dropped": 2}},
    "pipeline": {
        "bytes": 99,
        "entries": {"http": 50, "dns": 1},
        "dissect_errors": {"http": 2},
        "dissector_crashes": {"http": 1, "redis": 4},
        "flows": {"gaps": 3, "delivered_bytes": 4096},
    },
    "open_flows": 7,
}


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    store = SqliteStore(tmp_path / "e.db")
    store.add(
        [
            make(
                i,
                status=500 if i % 10 == 0 else 200,
                path="/api/slow" if i % 10 == 0 else "/api/items",
            )
            for i in range(HTTP_ENTRIES)
        ]
    )
    store.add([make(100, protocol="dns", status="NXDOMAIN", path="x.shop.svc")])
    store.commit()
    spool = PcapSpool(tmp_path / "spool")
    spool.write([f for i in range(HTTP_ENTRIES) for f in http_frames(i)])
    write_stats(tmp_path / "stats.json", STATS)
    yield LocalBackend(
        store, spool, LiveFeed(max_queue=10), stats_path=tmp_path / "stats.json", node="n"
    )
    spool.close()
    store.close()
