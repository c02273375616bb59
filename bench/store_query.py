"""The entry store over 1,000,000 entries: insert rate, query and aggregate latency.

Builds the same synthetic traffic (varied protocols, pods, namespaces, statuses, paths,
latencies, small bodies) into `SqliteStore` and into a minimal append-only segment log
(length-prefixed msgpack records with an in-memory offset index, queried by decoding
newest-first and running the Python predicate), the engine it was chosen against.  Reports
insert entries/s, bytes on disk, and p50/p99 milliseconds of `query(limit=100)` for typical
filters, of paging with `before=`, and of `stats()`/`servicemap()`: the first call, the same
call again (cached parts), and again after each 5,000 newly written entries (a dashboard
polling once a second at 5,000 entries/s).

Target (issue: worker and hub, store): p99 < 100 ms for an indexed query over 1M entries.
Every timed loop is bounded in runs and seconds, so the suite stays around 3 minutes.
"""

from __future__ import annotations

import random
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

import msgspec

from bench.common import table
from pilotfish.model import Endpoint, Entry, Payload
from pilotfish.query import Query, compile_query
from pilotfish.store.sqlite import SqliteStore

ENTRIES = 1_000_000
BATCH = 5_000
T0 = 1_767_225_600.0
FILTERS = (
    "http && status_code >= 500",
    'dst.namespace == "shop"',
    'src.pod.startsWith("cart-")',
    'path.contains("/api/")',
    "elapsed_time > 100000",
    'dns && "x.shop.svc" in dns_questions',
    "",
)
_LENGTH = struct.Struct("<I")
_PROTOCOLS = ("http",) * 11 + ("grpc",) * 3 + ("dns",) * 3 + ("redis",) * 2 + ("postgres",)
_NAMESPACES = ("shop", "shop", "shop", "pay", "pay", "default", "default", "kube-system")
_WORKLOADS = ("cart", "web", "checkout", "catalog", "payment", "auth", "search", "mail")
_PATHS = ("/api/v1/items/{n}", "/health", "/static/app.js", "/api/v2/cart/{n}", "/login")


def entries(count: int = ENTRIES, seed: int = 7) -> Iterator[list[Entry]]:
    """Deterministic synthetic entries, in batches of BATCH."""
    rnd = random.Random(seed)
    batch: list[Entry] = []
    for i in range(count):
        batch.append(_entry(rnd, i))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _entry(rnd: random.Random, i: int) -> Entry:
    protocol = rnd.choice(_PROTOCOLS)
    src_ns, dst_ns = rnd.choice(_NAMESPACES), rnd.choice(_NAMESPACES)
    src = rnd.choice(_WORKLOADS)
    dst = rnd.choice(_WORKLOADS)
    elapsed = int(rnd.expovariate(1 / 5000)) if rnd.random() > 0.01 else 150_000 + i % 1000
    request = Payload(size=120, body="")
    status: int | str = 200
    method, path = "GET", rnd.choice(_PATHS).format(n=i % 997)
    if protocol == "http":
        roll = rnd.random()
        status = 200 if roll < 0.85 else 404 if roll < 0.93 else 500 if roll < 0.98 else 503
        if rnd.random() < 0.2:
            method, request = "POST", Payload(size=300, body=f'{{"item": {i}, "qty": 2}}')
    elif protocol == "grpc":
        method = path = f"/shop.{dst.title()}/Get"
        status = 0 if rnd.random() < 0.97 else 14
    elif protocol == "dns":
        name = "x.shop.svc" if rnd.random() < 0.001 else f"{dst}.{dst_ns}.svc"
        method, path, status = "A", name, "NOERROR" if rnd.random() < 0.95 else "NXDOMAIN"
        request = Payload(size=40, questions=[{"name": name, "type": "A"}])
    else:
        method, path, status = "GET" if protocol == "redis" else "SELECT", f"key:{i % 101}", "ok"
    return Entry(
        id=f"bench-{i}",
        protocol=protocol,
        timestamp=T0 + i / 1000,
        elapsed_us=elapsed,
        src=Endpoint(
            f"10.1.{i % 7}.{i % 200}", 30000 + i % 30000, pod=f"{src}-{i % 5}", namespace=src_ns
        ),
        dst=Endpoint(f"10.2.0.{i % 50}", 80, pod=f"{dst}-{i % 3}", namespace=dst_ns, service=dst),
        method=method,
        path=path,
        status=status,
        summary=f"{method} {path} -> {status}",
        request=request,
        response=Payload(size=400, body='{"ok": true}'),
        stream=f"bench-s{i // 4}",
        node="bench",
    )


class SegmentLog:
    """The alternative engine, kept only as a measurement: an append-only record log."""

    def __init__(self, directory: Path, segment_bytes: int = 64 << 20) -> None:
        self._dir = directory
        self._segment_bytes = segment_bytes
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(Entry).decode
        self._index: list[tuple[int, int]] = []  # (segment number, offset) per record
        self._files: list[Path] = []
        self._out: BinaryIO | None = None
        self._offset = 0

    def add(self, batch: list[Entry]) -> None:
        if self._out is None or self._offset >= self._segment_bytes:
            self._roll()
        assert self._out is not None
        chunk = bytearray()
        number = len(self._files) - 1
        for entry in batch:
            data = self._encode(entry)
            self._index.append((number, self._offset + len(chunk)))
            chunk += _LENGTH.pack(len(data))
            chunk += data
        self._out.write(chunk)
        self._offset += len(chunk)

    def _roll(self) -> None:
        if self._out is not None:
            self._out.close()
        path = self._dir / f"{len(self._files):06d}.log"
        self._files.append(path)
        self._out = path.open("wb")
        self._offset = 0

    def commit(self) -> None:
        if self._out is not None:
            self._out.flush()

    def query(self, query: Query | None, limit: int = 100) -> list[Entry]:
        """Newest first: walk segments backwards, decode, match."""
        found: list[Entry] = []
        match = query.match if query is not None else None
        for path in reversed(self._files):
            data = path.read_bytes()
            records = []
            off = 0
            while off < len(data):
                (size,) = _LENGTH.unpack_from(data, off)
                records.append(data[off + 4 : off + 4 + size])
                off += 4 + size
            for raw in reversed(records):
                entry = self._decode(raw)
                if match is None or match(entry):
                    found.append(entry)
                    if len(found) >= limit:
                        return found
        return found

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._files)


def _timed(
    fn: Callable[[], object],
    runs: int,
    budget_s: float,
    before: Callable[[], object] | None = None,
) -> tuple[float, float, int]:
    """p50 and p99 milliseconds over up to `runs` calls within about `budget_s` seconds
    (at least min(runs, 3)); `before`, when given, runs untimed before each call."""
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < runs and (len(times) < 3 or time.perf_counter() < deadline):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, max(0, -(-99 * len(times) // 100) - 1))]
    return times[(len(times) - 1) // 2], p99, len(times)


def _fill(add: Callable[[list[Entry]], None], commit: Callable[[], None], count: int) -> float:
    spent = 0.0
    for batch in entries(count):
        start = time.perf_counter()
        add(batch)
        commit()
        spent += time.perf_counter() - start
    return count / spent


def _pager(store: SqliteStore) -> Callable[[], object]:
    cursor: list[str | None] = [None]

    def next_page() -> object:
        page = store.query(None, limit=100, before=cursor[0])
        cursor[0] = page.older
        return page

    return next_page


def run(count: int = ENTRIES) -> str:
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="pilotfish-bench-") as tmp:
        store = SqliteStore(Path(tmp) / "entries.db", 8 << 30)
        rate = _fill(store.add, store.commit, count)
        store.close()
        store = SqliteStore(Path(tmp) / "entries.db", 8 << 30, reader=True)
        rows.append(["sqlite: insert", f"{rate:,.0f} entries/s", "", "", ""])
        rows.append(
            ["sqlite: size on disk", f"{store.size_bytes() / count:,.0f} B/entry", "", "", ""]
        )
        for text in FILTERS:
            query = compile_query(text) if text else None
            p50, p99, n = _timed(partial(store.query, query, 100), 50, 4.0)
            rows.append([f"sqlite: query({text or '<empty>'})", "", f"{p50:.1f}", f"{p99:.1f}", n])
        p50, p99, n = _timed(_pager(store), 50, 4.0)
        rows.append(["sqlite: paging before= (limit 100)", "", f"{p50:.1f}", f"{p99:.1f}", n])
        shop = compile_query('dst.namespace == "shop" && http')
        aggregates: list[tuple[str, Callable[[], object]]] = [
            ("stats(60 s buckets), all", lambda: store.stats(None, 60)),
            ("stats(group_by=protocol), all", lambda: store.stats(None, 60, "protocol")),
            ('stats(dst.namespace == "shop" && http)', lambda: store.stats(shop, 60)),
            ("servicemap(), all", lambda: store.servicemap(None)),
            ('servicemap(dst.namespace == "shop" && http)', lambda: store.servicemap(shop)),
        ]
        writer = SqliteStore(Path(tmp) / "entries.db", 8 << 30)
        more = random.Random(11)
        added = [count]

        def arrive() -> None:  # one second of traffic at 5,000 entries/s, then ask
            writer.add([_entry(more, i) for i in range(added[0], added[0] + 5_000)])
            writer.commit()
            added[0] += 5_000

        for name, fn in aggregates:
            first, _, _ = _timed(fn, 1, 0.0)
            rows.append([f"sqlite: {name}, first", "", f"{first:.0f}", "", 1])
            p50, p99, n = _timed(fn, 5, 4.0)
            rows.append([f"sqlite: {name}, again", "", f"{p50:.0f}", f"{p99:.0f}", n])
            p50, p99, n = _timed(fn, 5, 4.0, before=arrive)
            rows.append([f"sqlite: {name}, +5,000 new", "", f"{p50:.0f}", f"{p99:.0f}", n])
        writer.close()
        store.close()

        log = SegmentLog(Path(tmp))
        rate = _fill(log.add, log.commit, count)
        rows.append(["segment log: insert", f"{rate:,.0f} entries/s", "", "", ""])
        rows.append(
            ["segment log: size on disk", f"{log.size_bytes() / count:,.0f} B/entry", "", "", ""]
        )
        for text in FILTERS:
            query = compile_query(text) if text else None
            p50, p99, n = _timed(partial(log.query, query), 3, 3.0)
            rows.append(
                [f"segment log: query({text or '<empty>'})", "", f"{p50:.1f}", f"{p99:.1f}", n]
            )
    title = f"entry store: {count:,} entries (target: indexed query p99 < 100 ms)"
    return table(title, ["what", "rate / size", "p50 ms", "p99 ms", "runs"], rows)


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else ENTRIES))
