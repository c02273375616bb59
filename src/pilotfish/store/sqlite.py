"""The entry store: one SQLite database in WAL mode, bounded by a byte limit.

`SqliteStore(path, storage_limit)` implements `store.base.EntryStore`.  The capture side
`add()`s entries and `commit()`s (at least once a second; `add` also commits by itself when
its buffer holds more than `max_buffer` entries, more than 1/32 of the limit in bytes, or
entries older than `commit_interval` seconds by the injected clock).  Other processes open
the same file with `reader=True` (creating the empty store if they come first; the
connection is then switched to `query_only`, so SQLite refuses any write) and query while
it is written (WAL: readers never block the writer nor see a half-written batch).  Crash safety: WAL with synchronous=NORMAL, so a
killed process loses at most what it had not committed.

Bounds (see docs/store.md):
- Size: `size_bytes()` (database + WAL + shared-memory file) stays under `storage_limit`.
  The WAL is checkpointed (and truncated) once it passes 1/8 of the limit, and after every
  commit that evicted; a quarter of the limit (at most 64 MiB) is kept for the WAL of one
  committing transaction (measured: a few dozen rows plus an eviction step touch ~100
  pages, as deletes reach every index).  When the used pages of the database pass the rest
  of the budget, the oldest entries are deleted in one batch down to 95 % of it, inside the
  committing transaction.  Freed pages go to SQLite's freelist and are reused, so the file
  stops growing.
  `counters()["evicted"]` counts deleted entries.
- Queries: `limit` is clamped to `max_limit` (10,000).  Filters that translate exactly to
  SQL run entirely in SQLite.  Otherwise the translatable part selects candidate rows, which
  are decoded and checked with `Query.match` in chunks, newest first, until `limit` entries
  match or `max_scan` rows (200,000) were examined; the page then carries the cursor where
  the scan stopped, so a client continues from there.  Aggregates (`stats`, `servicemap`,
  `streams`) read at most `max_aggregate` rows (1,000,000) when exact, `max_scan` otherwise.
  `stats` and `servicemap` keep their grouped rows per chunk of `aggregate_chunk` row
  numbers in a bounded cache (`store.partials`), so asking again groups only the rows added
  or touched by eviction since; the answer is the same as one pass over the rows.
- Bad input: an entry that cannot be stored (text with lone surrogates, integers past 64
  bits) is skipped and counted in `counters()["rejected"]`; the rest of its batch is kept.
- Cursors are decimal row sequence numbers, opaque to clients; a malformed one is a
  ValueError.  Entries are returned newest first (insertion order, which is request
  timestamp order when the pipeline's reorder buffer keeps up).
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from pilotfish.model import Entry
from pilotfish.query.sql import SQLITE_SETUP, SqlWhere
from pilotfish.store import aggregate, partials, schema
from pilotfish.store.base import Bucket, Page, Query, ServiceMap, StreamRef

MAX_LIMIT: Final = 10_000
MAX_SCAN: Final = 200_000
MAX_AGGREGATE: Final = 1_000_000
SCAN_CHUNK: Final = 2_000
CACHE_KIB: Final = 32 * 1024  # page cache of the writing connection
_PAGE_SIZE: Final = 4096
_MIN_LIMIT: Final = 1 << 20
# Evict down to this share of the budget: a small step keeps the deleting transaction's WAL
# footprint small (deletes touch pages of every index, not only the table's oldest pages).
_EVICT_TO: Final = 0.95
_EVERYTHING: Final = SqlWhere("1", [], True)
# what binding a row can raise: text that is not UTF-8 (lone surrogates), ints past 64 bits
_UNENCODABLE: Final = (UnicodeEncodeError, OverflowError, msgspec.EncodeError)
_BAD_ROW: Final = (UnicodeEncodeError, OverflowError, sqlite3.InterfaceError, sqlite3.DataError)
_STREAM_COLUMNS: Final = "stream, src_ip, src_port, dst_ip, dst_port, transport, ts, elapsed"


class SqliteStore:
    """A bounded entry store in one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        storage_limit: int = 500 * 1024 * 1024,
        *,
        reader: bool = False,
        clock: Callable[[], float] = time.monotonic,
        max_buffer: int = 5_000,
        commit_interval: float = 1.0,
        max_limit: int = MAX_LIMIT,
        max_scan: int = MAX_SCAN,
        max_aggregate: int = MAX_AGGREGATE,
        aggregate_chunk: int = partials.CHUNK,
    ) -> None:
        if storage_limit < _MIN_LIMIT:
            raise ValueError(f"storage_limit must be at least {_MIN_LIMIT} bytes")
        self.path = Path(path)
        self.reader = reader
        self._clock = clock
        self._max_buffer = max_buffer
        self._commit_interval = commit_interval
        self._max_limit = max_limit
        self._max_scan = max_scan
        self._max_aggregate = max_aggregate
        self._parts = partials.PartCache()
        self._chunk = aggregate_chunk
        self._wal_budget = max(min(storage_limit // 8, 16 * 1024 * 1024), 64 * 1024)
        self._batch_bytes = max(storage_limit // 32, 16 * 1024)
        # one committing transaction (a batch plus an eviction step) can add this much WAL
        # on top of the checkpoint threshold: deletes touch pages of every index
        self._txn_reserve = max(min(storage_limit // 4, 64 * 1024 * 1024), 4 * self._batch_bytes)
        self._db_budget = storage_limit - self._wal_budget - self._txn_reserve
        self._pending: list[tuple[Any, ...]] = []
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._counters = dict.fromkeys(
            ("added", "committed", "rejected", "evicted", "evictions", "scanned"), 0
        )
        # One connection, used by one thread at a time: its owner serialises the calls (the
        # API runs them all on one dedicated thread), so it may move between threads.
        self._db = sqlite3.connect(
            self.path, isolation_level=None, timeout=10.0, check_same_thread=False
        )
        self._db.execute(SQLITE_SETUP)
        if not reader or not self._has_table():
            self._setup_writer()  # a reader that comes first creates the same empty store
        if reader:
            self._db.execute("PRAGMA query_only = ON")  # SQLite itself refuses any write

    def _has_table(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entries'"
        ).fetchone()
        return row is not None

    def _setup_writer(self) -> None:
        db = self._db
        db.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute(f"PRAGMA wal_autocheckpoint = {max(self._wal_budget // _PAGE_SIZE // 2, 16)}")
        db.execute(f"PRAGMA journal_size_limit = {self._wal_budget // 2}")
        for statement in schema.SCHEMA:
            db.execute(statement)

    # --- writing ------------------------------------------------------------------------

    def add(self, entries: Sequence[Entry]) -> None:
        """Buffer entries; commits by itself past the buffer bounds (module docstring)."""
        if self.reader:
            raise PermissionError("this store was opened as a reader")
        if not entries:
            return
        if not self._pending:
            self._pending_since = self._clock()
        row_of = schema.row_of
        for entry in entries:
            try:
                row = row_of(entry)
            except _UNENCODABLE:
                self._counters["rejected"] += 1
                continue
            self._pending.append(row)
            self._pending_bytes += len(row[-1]) + 128
            if self._pending_bytes >= self._batch_bytes:
                self.commit()
        self._counters["added"] += len(entries)
        if (
            len(self._pending) >= self._max_buffer
            or self._clock() - self._pending_since >= self._commit_interval
        ):
            self.commit()

    def commit(self) -> None:
        """Write the buffered entries in one transaction, evicting the oldest if needed."""
        if not self._pending:
            return
        rows, self._pending, self._pending_bytes = self._pending, [], 0
        db = self._db
        evictions = self._counters["evictions"]
        db.execute("BEGIN IMMEDIATE")
        try:
            rejected = self._insert(rows)
            self._evict()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._counters["committed"] += len(rows) - rejected
        self._limit_wal(force=self._counters["evictions"] != evictions)

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert a batch; if a row cannot be stored, insert one by one and skip the bad."""
        db = self._db
        rejected = 0
        db.execute("SAVEPOINT batch")
        try:
            db.executemany(schema.INSERT, rows)
        except _BAD_ROW:
            db.execute("ROLLBACK TO batch")
            for row in rows:
                try:
                    db.execute(schema.INSERT, row)
                except _BAD_ROW:
                    rejected += 1
        db.execute("RELEASE batch")
        self._counters["rejected"] += rejected
        return rejected

    def _evict(self) -> None:
        db = self._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        used = (pages - free) * _PAGE_SIZE
        if used <= self._db_budget:
            return
        low, high = db.execute("SELECT min(seq), max(seq) FROM entries").fetchone()
        if low is None:
            return
        count = high - low + 1
        per_row = used / count
        drop = min(count, math.ceil((used - _EVICT_TO * self._db_budget) / per_row))
        db.execute("DELETE FROM entries WHERE seq < ?", (low + drop,))
        self._counters["evicted"] += drop
        self._counters["evictions"] += 1

    def _limit_wal(self, force: bool = False) -> None:
        """Checkpoint and truncate the WAL past its budget, or after an eviction (`force`)."""
        if not force and _file_size(self._wal_path()) <= self._wal_budget:
            return
        # TRUNCATE waits for readers through the busy handler: keep that wait short.
        self._db.execute("PRAGMA busy_timeout = 200")
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._db.execute("PRAGMA busy_timeout = 10000")

    # --- reading ------------------------------------------------------------------------

    def query(
        self,
        query: Query | None,
        limit: int = 100,
        before: str | None = None,
        after: str | None = None,
    ) -> Page:
        """A page of matching entries, newest first (see the module docstring)."""
        limit = max(0, min(limit, self._max_limit))
        upper = _cursor(before)
        lower = _cursor(after)
        ascending = after is not None and before is None
        seqs: list[int] = []
        entries: list[Entry] = []
        self._db.execute("BEGIN")  # one snapshot: `top` and the rows agree
        try:
            top = self._top()
            hi = top if upper is None else min(upper - 1, top)
            lo = 0 if lower is None else lower + 1
            bounded = upper is not None or lower is not None
            stop, exhausted = self._scan(query, lo, hi, ascending, limit, seqs, entries, bounded)
        finally:
            self._db.execute("COMMIT")
        if ascending:
            seqs.reverse()
            entries.reverse()
            older = str(seqs[-1]) if seqs else str(lo)
            newer = str(hi) if exhausted else str(stop)
            older_cursor: str | None = older
        else:
            older_cursor = None if exhausted else str(stop)
            newer = str(hi)
        return Page(entries=entries, older=older_cursor, newer=newer, positions=seqs)

    def _scan(
        self,
        query: Query | None,
        lo: int,
        hi: int,
        ascending: bool,
        limit: int,
        seqs: list[int],
        entries: list[Entry],
        bounded: bool = True,
    ) -> tuple[int, bool]:
        """Fill seqs/entries; return (cursor where the scan stopped, range exhausted)."""
        where = _where(query)
        order = "ASC" if ascending else "DESC"
        decode = schema.BLOB_DECODER.decode
        sql = (
            f"SELECT seq, blob FROM entries WHERE seq >= ? AND seq <= ? AND {where.clause} "
            f"ORDER BY seq {order} LIMIT ?"
        )
        if where.exact:
            # seqs first (an index can answer without touching blobs), then their blobs:
            # the sorter never carries blobs when an index range must be re-ordered by seq.
            # Without a cursor the seq range is the whole table (one snapshot): leaving it
            # out lets the planner pick the filter's index instead of the rowid range.
            bounds, params = ("seq >= ? AND seq <= ? AND ", [lo, hi]) if bounded else ("", [])
            exact_sql = (
                "SELECT seq, blob FROM entries WHERE seq IN (SELECT seq FROM entries "
                f"WHERE {bounds}{where.clause} ORDER BY seq {order} LIMIT ?) "
                f"ORDER BY seq {order}"
            )
            rows = self._db.execute(exact_sql, [*params, *where.params, limit]).fetchall()
            for seq, blob in rows:
                seqs.append(seq)
                entries.append(decode(blob))
            if len(rows) < limit or limit == 0:
                return (hi if ascending else lo), len(rows) < limit
            return rows[-1][0], False
        assert query is not None
        match = query.match
        examined = 0
        while lo <= hi and len(entries) < limit and examined < self._max_scan:
            chunk = min(SCAN_CHUNK, self._max_scan - examined)
            rows = self._db.execute(sql, [lo, hi, *where.params, chunk]).fetchall()
            for seq, blob in rows:
                examined += 1
                entry = decode(blob)
                if match(entry):
                    seqs.append(seq)
                    entries.append(entry)
                    if len(entries) >= limit:
                        self._counters["scanned"] += examined
                        return seq, False
            if len(rows) < chunk:
                self._counters["scanned"] += examined
                return (hi if ascending else lo), True
            last = rows[-1][0]
            if ascending:
                lo = last + 1
            else:
                hi = last - 1
        self._counters["scanned"] += examined
        if lo > hi:
            return (hi if ascending else lo), True
        return (lo - 1 if ascending else hi + 1), False

    def newest_id(self) -> str | None:
        """The id of the entry stored last (a restarted writer continues after it)."""
        row = self._db.execute("SELECT id FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def get(self, entry_id: str) -> Entry | None:
        row = self._db.execute(
            "SELECT blob FROM entries WHERE id = ? ORDER BY seq DESC LIMIT 1", (entry_id,)
        ).fetchone()
        return None if row is None else schema.BLOB_DECODER.decode(row[0])

    def stats(
        self, query: Query | None, bucket_s: float, group_by: str = "", latency: bool = False
    ) -> list[Bucket]:
        """Count, errors and latency percentiles per time bucket (and group)."""
        if group_by and group_by not in schema.GROUPABLE:
            raise ValueError(f"cannot group by {group_by!r}")
        if not bucket_s > 0 or math.isinf(bucket_s):
            raise ValueError(f"bucket_s must be a positive number of seconds, not {bucket_s!r}")
        group = f"CAST({schema.COLUMNS[group_by]} AS TEXT)" if group_by else "''"
        groups = self._grouped(
            query,
            ("stats", bucket_s, group_by),
            f"ts, {group}, elapsed, answered, error",
            lambda rows: aggregate.bucket_groups(rows, bucket_s),
        )
        return aggregate.buckets_of(groups, bucket_s, latency)

    def servicemap(self, query: Query | None, latency: bool = False) -> ServiceMap:
        """Workloads and the calls between them (see `aggregate.service_map`)."""
        groups = self._grouped(query, ("map",), aggregate.NODE_COLUMNS, aggregate.edge_groups)
        return aggregate.map_of(groups, latency)

    def _grouped(
        self,
        query: Query | None,
        asked: tuple[Any, ...],
        columns: str,
        group: Callable[[Iterator[tuple[Any, ...]]], aggregate.Groups],
    ) -> aggregate.Groups:
        """Matching rows grouped, from cached parts where they still hold (`partials`)."""
        where = _where(query)
        bound = self._max_aggregate if where.exact else self._max_scan

        def compute(lo: int, hi: int, limit: int | None) -> partials.Part:
            tally = [0]
            ranged = lo > oldest or hi < newest
            most = bound if limit is None else limit
            rows = self._range_rows(query, where, columns, lo, hi, most, tally, ranged)
            groups = group(rows)
            return partials.frozen(lo, hi, groups, tally[0])

        self._db.execute("BEGIN")  # one snapshot for every part
        try:
            oldest, newest = self._db.execute("SELECT min(seq), max(seq) FROM entries").fetchone()
            if oldest is None:
                return {}
            parts = partials.collect(
                self._parts,
                (*asked, "" if query is None else query.text),
                compute,
                oldest,
                newest,
                bound,
                cacheable=query is None or query.timeless,
                chunk=self._chunk,
            )
        finally:
            self._db.execute("COMMIT")
        return aggregate.merge_groups([p.groups for p in parts])

    def streams(self, query: Query | None, limit: int = 10_000) -> list[StreamRef]:
        """The flows of matching entries (newest first), each with its time span."""
        limit = max(0, min(limit, self._max_limit))
        spans: dict[tuple[Any, ...], list[float]] = {}
        for stream, cip, cport, sip, sport, transport, ts, elapsed in self._rows(
            query, _STREAM_COLUMNS
        ):
            key = (stream, cip, cport, sip, sport, transport)
            end = ts + elapsed / 1e6
            span = spans.get(key)
            if span is None:
                if len(spans) >= limit:
                    continue
                spans[key] = [ts, end]
            else:
                span[0] = min(span[0], ts)
                span[1] = max(span[1], end)
        return [
            StreamRef(k[0], k[1], k[2], k[3], k[4], k[5], first, last)
            for k, (first, last) in spans.items()
        ]

    def _rows(self, query: Query | None, columns: str) -> Iterator[tuple[Any, ...]]:
        """Selected columns of matching rows, newest first, within the aggregate bounds."""
        where = _where(query)
        bound = self._max_aggregate if where.exact else self._max_scan
        yield from self._range_rows(query, where, columns, 0, self._top(), bound, [0], False)

    def _range_rows(
        self,
        query: Query | None,
        where: SqlWhere,
        columns: str,
        lo: int,
        hi: int,
        limit: int,
        tally: list[int],
        ranged: bool = True,
    ) -> Iterator[tuple[Any, ...]]:
        """Selected columns of the matching rows numbered lo..hi, newest first; at most
        `limit` matches when the filter is exact SQL, else at most `limit` candidate rows
        checked in Python.  `tally[0]` counts those rows as they go.  `ranged=False` says
        lo..hi is the whole table."""
        # Over the whole table the seq range is left out, so the planner can pick the
        # filter's index instead of the rowid range (scans keep `seq <= hi` to page).
        low, bounds = ("seq >= ? AND ", [lo]) if ranged else ("", [])
        if where.exact:
            if ranged:
                low, bounds = "seq >= ? AND seq <= ? AND ", [lo, hi]
            for row in self._db.execute(
                f"SELECT {columns} FROM entries WHERE {low}{where.clause} "
                "ORDER BY seq DESC LIMIT ?",
                [*bounds, *where.params, limit],
            ):
                tally[0] += 1
                yield row
            return
        assert query is not None
        match = query.match
        decode = schema.BLOB_DECODER.decode
        sql = (
            f"SELECT seq, blob, {columns} FROM entries WHERE {low}seq <= ? "
            f"AND {where.clause} ORDER BY seq DESC LIMIT ?"
        )
        while tally[0] < limit and hi >= lo:
            chunk = min(SCAN_CHUNK, limit - tally[0])
            rows = self._db.execute(sql, [*bounds, hi, *where.params, chunk]).fetchall()
            tally[0] += len(rows)
            self._counters["scanned"] += len(rows)
            for row in rows:
                if match(decode(row[1])):
                    yield row[2:]
            if len(rows) < chunk:
                break
            hi = rows[-1][0] - 1

    def _top(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM entries").fetchone()
        return 0 if row[0] is None else int(row[0])

    # --- housekeeping -------------------------------------------------------------------

    def _wal_path(self) -> Path:
        return self.path.with_name(self.path.name + "-wal")

    def size_bytes(self) -> int:
        """Bytes on disk: database, WAL and shared-memory index."""
        shm = self.path.with_name(self.path.name + "-shm")
        return _file_size(self.path) + _file_size(self._wal_path()) + _file_size(shm)

    def counters(self) -> dict[str, int]:
        """added, committed, rejected (unstorable text), evicted (entries), evictions
        (batches), scanned (rows decoded by Python filters), and the aggregate cache's
        parts_hits, parts_extended, parts_computed, parts_evicted."""
        parts = {f"parts_{k}": v for k, v in self._parts.counters.items()}
        return {**self._counters, **parts}

    def close(self) -> None:
        try:
            if not self.reader:
                self.commit()
                self._db.execute("PRAGMA optimize")
        finally:
            self._db.close()


def _where(query: Query | None) -> SqlWhere:
    if query is None:
        return _EVERYTHING
    where: SqlWhere | None = query.sql(schema.COLUMNS)
    return SqlWhere("1", [], False) if where is None else where


def _cursor(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ValueError(f"bad cursor {text[:40]!r}")
    return int(text)


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
