"""The SQLite entry store: round trips, paging, pushdown vs predicate, bounds, crashes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.model import Entry
from pilotfish.query import compile_query
from pilotfish.query.fields import FIELDS
from pilotfish.store import schema
from pilotfish.store.base import EntryStore
from pilotfish.store.sqlite import SqliteStore
from tests.query.strategies import combine, entries, literal, small_ints, sql_atoms, texts
from tests.store.entries import T0, make

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "entries.db", 64 * MIB)
    yield s
    s.close()


def ids(items: list[Entry]) -> list[str]:
    return [e.id for e in items]


# --- normal use ---------------------------------------------------------------------------


def test_round_trip_and_get(store: SqliteStore) -> None:
    batch = [make(i, body="x" * i) for i in range(50)] + [make(50, status=None, elapsed_us=None)]
    store.add(batch)
    store.commit()
    page = store.query(None, limit=1000)
    assert page.entries == batch[::-1]
    assert page.older is None  # nothing older
    assert store.get("n-7") == batch[7]
    assert store.get("missing") is None


def test_entries_are_visible_after_commit_only(store: SqliteStore, tmp_path: Path) -> None:
    other = SqliteStore(tmp_path / "entries.db", 64 * MIB, reader=True)
    store.add([make(1)])
    assert other.query(None).entries == []
    store.commit()
    assert ids(other.query(None).entries) == ["n-1"]
    with pytest.raises(PermissionError):
        other.add([make(2)])
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        other._db.execute("DELETE FROM entries")  # the connection itself refuses writes
    assert ids(other.query(None).entries) == ["n-1"]
    other.close()


def test_newest_id_is_the_last_stored(store: SqliteStore) -> None:
    assert store.newest_id() is None
    store.add([make(5), make(3)])
    store.commit()
    assert store.newest_id() == "n-3"  # insertion order, not the number


def test_add_commits_by_itself_after_an_interval(tmp_path: Path) -> None:
    now = [100.0]
    writer = SqliteStore(tmp_path / "e.db", 64 * MIB, clock=lambda: now[0], max_buffer=10**6)
    reader = SqliteStore(tmp_path / "e.db", 64 * MIB, reader=True)
    writer.add([make(1)])
    now[0] += 0.5
    writer.add([make(2)])
    assert reader.query(None).entries == []
    now[0] += 0.6  # the first buffered entry is now more than 1 s old
    writer.add([make(3)])
    assert ids(reader.query(None).entries) == ["n-3", "n-2", "n-1"]
    writer.close()
    reader.close()


def test_add_commits_by_itself_past_max_buffer(tmp_path: Path) -> None:
    writer = SqliteStore(tmp_path / "e.db", 64 * MIB, max_buffer=10, clock=lambda: 0.0)
    reader = SqliteStore(tmp_path / "e.db", 64 * MIB, reader=True)
    writer.add([make(i) for i in range(9)])
    assert reader.query(None).entries == []
    writer.add([make(9)])
    assert len(reader.query(None, limit=100).entries) == 10
    writer.close()
    reader.close()


def test_typical_filters(store: SqliteStore) -> None:
    store.add(
        [
            make(0, status=200),
            make(1, status=503),
            make(2, protocol="dns", status="NXDOMAIN", path="x.shop.svc"),
            make(3, src_pod="web-1", dst_namespace="pay"),
            make(4, elapsed_us=250_000),
        ]
    )
    store.commit()

    def run(text: str) -> list[str]:
        return ids(store.query(compile_query(text)).entries)

    assert run("http && status_code >= 500") == ["n-1"]
    assert run('dst.namespace == "pay"') == ["n-3"]
    assert run('src.pod.startsWith("cart-")') == ["n-4", "n-2", "n-1", "n-0"]
    assert run("elapsed_time > 100000") == ["n-4"]
    assert run('dns && dns_rcode == "NXDOMAIN"') == ["n-2"]
    assert run('path.matches("^x\\\\.")') == ["n-2"]  # not pushed down: Python
    assert run("") == ["n-4", "n-3", "n-2", "n-1", "n-0"]


def test_limit_is_clamped(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "e.db", 64 * MIB, max_limit=5)
    s.add([make(i) for i in range(20)])
    s.commit()
    assert len(s.query(None, limit=10**9).entries) == 5
    assert s.query(None, limit=-3).entries == []
    s.close()


@pytest.mark.parametrize("cursor", ["", "abc", "-1", "1" * 40, "١٢"])
def test_bad_cursor_is_a_clear_error(store: SqliteStore, cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        store.query(None, before=cursor)


def test_empty_store(store: SqliteStore) -> None:
    page = store.query(None)
    assert page.entries == [] and page.older is None
    assert store.stats(None, 60) == []
    assert store.servicemap(None).nodes == []
    assert store.streams(None) == []
    assert store.query(None, after=page.newer).entries == []


# --- paging -------------------------------------------------------------------------------


def _page_through(store: SqliteStore, text: str, limit: int, arrivals: Iterator[int]) -> None:
    """Page older from the head, then newer from the head, adding entries in between."""
    query = compile_query(text) if text else None
    head = store.query(query, limit=limit)
    seen = ids(head.entries)
    cursor = head.older
    while cursor is not None:
        store.add([make(next(arrivals))])
        store.commit()
        page = store.query(query, limit=limit, before=cursor)
        seen += ids(page.entries)
        cursor = page.older
    older_part = list(seen)
    newer = head.newer
    newest: list[str] = []
    while True:
        page = store.query(query, limit=limit, after=newer)
        newest = ids(page.entries) + newest
        if page.newer == newer:
            break
        newer = page.newer
    everything = SqliteStore(store.path, 64 * MIB, reader=True)
    expected = [
        e.id for e in everything.query(None, limit=10_000).entries if not query or query.match(e)
    ]
    everything.close()
    assert newest + older_part == expected
    assert len(set(expected)) == len(expected)


def test_paging_both_ways_while_entries_arrive(store: SqliteStore) -> None:
    store.add([make(i) for i in range(0, 1000)])
    store.commit()
    _page_through(store, "", 37, iter(range(1000, 2000)))


def test_paging_an_inexact_filter_with_a_bounded_scan(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "e.db", 64 * MIB, max_scan=50)
    s.add([make(i, path=f"/p/{i % 7}") for i in range(500)])
    s.commit()
    # matches() is never pushed down: every page scans at most 50 rows and says where it
    # stopped, possibly with fewer entries than asked.
    page = s.query(compile_query('path.matches("3$")'), limit=100)
    assert 0 < len(page.entries) <= 8 and page.older is not None
    assert s.counters()["scanned"] == 50
    _page_through(s, 'path.matches("3$")', 10, iter(range(500, 10_000)))
    s.close()


@given(
    existing=st.integers(0, 120),
    limit=st.integers(1, 40),
    max_scan=st.integers(1, 300),
    text=st.sampled_from(("", "status_code >= 500", 'path.matches("[05]$")', "http")),
)
def test_paging_never_duplicates_or_skips(
    existing: int, limit: int, max_scan: int, text: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = SqliteStore(Path(tmp) / "e.db", 64 * MIB, max_scan=max_scan)
        s.add(
            [
                make(
                    i,
                    status=500 if i % 3 == 0 else 200,
                    path=f"/{i}",
                    protocol="http" if i % 4 else "dns",
                )
                for i in range(existing)
            ]
        )
        s.commit()
        _page_through(s, text, limit, iter(range(existing, existing + 10_000)))
        s.close()


# --- pushdown agrees with the predicate ---------------------------------------------------


def _column_atoms() -> st.SearchStrategy[str]:
    strings = [k for k in schema.COLUMNS if FIELDS[k].type == "string"]
    numbers = [k for k in schema.COLUMNS if FIELDS[k].type == "int"]
    ops = st.sampled_from(("==", "!=", "<", ">="))
    return st.one_of(
        st.tuples(st.sampled_from(strings), ops, texts.map(literal)).map(" ".join),
        st.tuples(st.sampled_from(numbers), ops, small_ints.map(str)).map(" ".join),
        st.tuples(st.sampled_from(strings), st.sampled_from(("startsWith", "contains")), texts).map(
            lambda t: f"{t[0]}.{t[1]}({literal(t[2])})"
        ),
        st.sampled_from(
            ("tls", 'timestamp > timestamp("2026-01-01T00:00:00Z")', "grpc_status != 0")
        ),
        sql_atoms(),
    )


@given(rows=st.lists(entries(), max_size=15), text=combine(_column_atoms()))
def test_store_query_equals_predicate(rows: list[Entry], text: str) -> None:
    query = compile_query(text, clock=lambda: 1767226000.0)
    with tempfile.TemporaryDirectory() as tmp:
        s = SqliteStore(Path(tmp) / "e.db", 64 * MIB)
        s.add(rows)
        s.commit()
        got = s.query(query, limit=1000).entries
        s.close()
    assert got == [e for e in rows if query.match(e)][::-1]


@given(entry=entries())
def test_every_column_holds_what_the_predicate_reads(entry: Entry) -> None:
    conn = sqlite3.connect(":memory:")
    for statement in schema.SCHEMA:
        conn.execute(statement)
    conn.execute(schema.INSERT, schema.row_of(entry))
    names = list(schema.COLUMNS)
    values = conn.execute(
        f"SELECT {', '.join(schema.COLUMNS[n] for n in names)} FROM entries"
    ).fetchone()
    for name, value in zip(names, values, strict=True):
        expected = FIELDS[name].getter(entry)
        if name == "tls":
            expected = entry.tls  # the column is the flag; the protocol half is SQL's job
        assert value == expected, name


# --- bounds -------------------------------------------------------------------------------


def test_size_stays_under_the_limit_under_a_flood(tmp_path: Path) -> None:
    limit = 5 * MIB
    s = SqliteStore(tmp_path / "e.db", limit)
    biggest = 0
    body = "b" * 900
    for start in range(0, 100_000, 1000):
        s.add([make(i, body=body, path=f"/api/{i % 97}") for i in range(start, start + 1000)])
        s.commit()
        biggest = max(biggest, s.size_bytes())
        assert s.size_bytes() <= limit
        if start == 50_000:
            half_way = os.stat(tmp_path / "e.db").st_size
    assert biggest <= limit
    # freed pages are reused: the database file did not grow over the second half
    assert os.stat(tmp_path / "e.db").st_size <= half_way * 1.05
    counters = s.counters()
    assert counters["evicted"] > 90_000 and counters["committed"] == 100_000
    page = s.query(None, limit=1)
    assert ids(page.entries) == ["n-99999"]  # newest kept, oldest gone
    assert s.get("n-0") is None
    s.close()


def test_a_tiny_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore(tmp_path / "e.db", 1000)


# --- crashes and concurrent readers --------------------------------------------------------

CHILD = """
import sys, time
from pilotfish.store.sqlite import SqliteStore
from tests.store.entries import make
store = SqliteStore(sys.argv[1], 64 * 1024 * 1024)
total = int(sys.argv[2])
i = 0
deadline = time.monotonic() + 20
while i < total and time.monotonic() < deadline:
    store.add([make(n, body="x" * 200) for n in range(i, i + 200)])
    i += 200
    store.commit()
    print(i, flush=True)
store.close()
"""


def _writer(path: Path, total: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(total)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigkill_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    child = _writer(path, 10**9)
    assert child.stdout is not None
    committed = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < 3:
            line = child.stdout.readline()
            assert line, "writer died"
            committed = int(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert committed > 0
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()
    s = SqliteStore(path, 64 * MIB)
    newest = s.query(None, limit=1).entries[0]
    top = int(newest.id.split("-")[1])
    assert top + 1 >= committed  # every entry reported committed is there
    oldest = s.query(None, limit=1, after="0").entries[0]
    first = int(oldest.id.split("-")[1])
    total = sqlite3.connect(path).execute("SELECT count(*) FROM entries").fetchone()[0]
    assert total == top - first + 1  # no holes
    s.close()


def test_reader_process_queries_while_a_writer_floods(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    SqliteStore(path, 64 * MIB).close()  # the schema exists before the reader opens
    child = _writer(path, 40_000)
    reader = SqliteStore(path, 64 * MIB, reader=True)
    counts = []
    try:
        deadline = time.monotonic() + 30
        while child.poll() is None and time.monotonic() < deadline:
            page = reader.query(compile_query('path.startsWith("/api")'), limit=50)
            numbers = [int(i.split("-")[1]) for i in ids(page.entries)]
            assert numbers == sorted(numbers, reverse=True)
            assert len(set(numbers)) == len(numbers)
            counts.append(len(reader.query(None, limit=10_000).entries))
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == 0
    assert len(counts) > 2 and counts == sorted(counts)  # it only ever grew
    assert reader.query(None, limit=1).entries[0].id == "n-39999"
    reader.close()


def test_timestamps_are_seconds(store: SqliteStore) -> None:
    store.add([make(0, ts=T0 + 0.25)])
    store.commit()
    got = store.query(compile_query('timestamp == timestamp("2026-01-01T00:00:00.25Z")'))
    assert ids(got.entries) == ["n-0"]


def test_a_reader_that_comes_first_creates_the_empty_store(tmp_path: Path) -> None:
    reader = SqliteStore(tmp_path / "e.db", 64 * MIB, reader=True)
    assert reader.query(None).entries == []
    writer = SqliteStore(tmp_path / "e.db", 64 * MIB)
    writer.add([make(1)])
    writer.commit()
    assert ids(reader.query(None).entries) == ["n-1"]
    writer.close()
    reader.close()


def test_unstorable_entries_are_skipped_and_counted(store: SqliteStore) -> None:
    store.add([make(1), make(2, path="\ud800"), make(3, status=2**70), make(4, status=2**63)])
    store.add([make(5)])
    store.commit()
    assert ids(store.query(None).entries) == ["n-5", "n-1"]
    counters = store.counters()
    assert counters["rejected"] == 3 and counters["committed"] == 2


def test_it_is_an_entry_store(tmp_path: Path) -> None:
    s: EntryStore = SqliteStore(tmp_path / "e.db", 64 * MIB)  # mypy checks the contract
    s.add([make(1)])
    s.commit()
    assert s.size_bytes() > 0
    s.close()


def test_positions_restart_a_page_at_any_entry(store: SqliteStore) -> None:
    store.add([make(i, status=500 if i % 3 == 0 else 200) for i in range(30)])
    store.commit()
    q = compile_query("status_code >= 500")
    page = store.query(q, limit=4)
    assert len(page.positions) == len(page.entries) == 4
    again = store.query(q, limit=2, before=str(page.positions[2] + 1))
    assert [e.id for e in again.entries] == [e.id for e in page.entries[2:4]]
    rising = store.query(q, limit=3, after=str(page.positions[-1]))
    assert rising.positions == sorted(rising.positions, reverse=True)
    assert [e.id for e in rising.entries] == [e.id for e in page.entries[:3]]


# --- aggregates from cached parts -----------------------------------------------------------

AGGREGATE_FILTERS = (
    "",  # everything
    "http && status_code >= 500",  # SQL
    'path.matches("[05]$")',  # checked in Python (a bounded scan)
    'timestamp > now() - duration("100000h")',  # reads the clock: never cached
)


def _varied(i: int) -> Entry:
    return make(
        i,
        protocol=("http", "http", "dns", "grpc")[i % 4],
        status=(200, 503, 404, 200, None)[i % 5],
        elapsed_us=None if i % 11 == 0 else (i * 7919) % 100_000,
        src_pod=f"cart-{i % 3}",
        dst_service=("api", "db", "")[i % 3],
        path=f"/api/{i % 13}",
        body="b" * 1500,
        ts=T0 + i * 7.5,
    )


def test_cached_aggregates_equal_a_fresh_pass_while_entries_arrive_and_go(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.db"
    writer = SqliteStore(path, 1 * MIB)
    cached = SqliteStore(path, 1 * MIB, reader=True, aggregate_chunk=32, max_scan=150)
    for start in range(0, 1200, 60):
        writer.add([_varied(i) for i in range(start, start + 60)])
        writer.commit()
        fresh = SqliteStore(path, 1 * MIB, reader=True, aggregate_chunk=1 << 40, max_scan=150)
        for text in AGGREGATE_FILTERS:
            q = compile_query(text)
            for group_by in ("", "protocol"):
                assert cached.stats(q, 60, group_by, latency=True) == fresh.stats(
                    q, 60, group_by, latency=True
                ), (start, text, group_by)
            assert cached.servicemap(q, latency=True) == fresh.servicemap(q, latency=True)
        fresh.close()
    counters = cached.counters()
    assert writer.counters()["evicted"] > 0  # the oldest chunks were evicted on the way
    assert counters["parts_hits"] > 0 and counters["parts_extended"] > 0
    writer.close()
    cached.close()


def test_asking_again_groups_no_row_twice(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "e.db", 64 * MIB, aggregate_chunk=100)
    s.add([_varied(i) for i in range(1000)])
    s.commit()
    first = s.servicemap(None)
    computed = s.counters()["parts_computed"]
    assert s.servicemap(None) == first
    assert s.counters()["parts_computed"] == computed  # every part came from the cache
    assert s.counters()["parts_hits"] == computed == 11  # rows 1..1000: chunks 0..10
    s.close()
