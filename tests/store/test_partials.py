"""Per-chunk aggregate parts: the cached answer equals one pass over the same rows.

A list stands for the table: row number -> (source, target, protocol, elapsed, answered,
error).  Rows are appended, the oldest evicted, and after each step `collect` (with its cache)
must give exactly the groups of the newest rows within the bound, as computed directly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.store import aggregate
from pilotfish.store.partials import CHUNK, Part, PartCache, collect, frozen

Row = tuple[str, str, str, int, int, int]


class Table:
    """Rows by number, oldest evicted first; `compute` groups a range as the store would."""

    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self.next = 1
        self.computed_rows = 0

    def append(self, rows: list[Row]) -> None:
        for row in rows:
            self.rows[self.next] = row
            self.next += 1

    def evict(self, count: int) -> None:
        for seq in sorted(self.rows)[:count]:
            del self.rows[seq]

    def kept(self, row: Row) -> bool:
        return row[2] != "dns"  # the filter: everything but DNS

    def compute(self, lo: int, hi: int, limit: int | None) -> Part:
        picked = [self.rows[s] for s in sorted(self.rows, reverse=True) if lo <= s <= hi]
        matched = [r for r in picked if self.kept(r)]
        if limit is not None:
            matched = matched[:limit]
        self.computed_rows += len(matched)
        return frozen(lo, hi, aggregate.edge_groups(matched), len(matched))

    def direct(self, bound: int) -> aggregate.Groups:
        newest = [self.rows[s] for s in sorted(self.rows, reverse=True)]
        return aggregate.edge_groups([r for r in newest if self.kept(r)][:bound])

    def bounds(self) -> tuple[int, int]:
        return (min(self.rows), max(self.rows)) if self.rows else (1, 0)


def answer(groups: aggregate.Groups) -> Any:
    return aggregate.map_of(groups, latency=True)


def collected(cache: PartCache, table: Table, bound: int, chunk: int) -> aggregate.Groups:
    oldest, newest = table.bounds()
    parts = collect(cache, "map", table.compute, oldest, newest, bound, chunk=chunk)
    return aggregate.merge_groups([p.groups for p in parts]) if parts else {}


def row(i: int) -> Row:
    protocols = ("http", "http", "grpc", "dns")
    return (
        f"pod\x1fshop\x1fp{i % 3}",
        f"service\x1fshop\x1fs{i % 2}",
        protocols[i % 4],
        i * 37 % 500,
        i % 5 != 0,
        i % 7 == 0,
    )


def test_asking_again_reuses_every_full_chunk() -> None:
    table, cache = Table(), PartCache()
    table.append([row(i) for i in range(100)])
    first = collected(cache, table, 10_000, chunk=16)
    assert answer(first) == answer(table.direct(10_000))
    table.computed_rows = 0
    again = collected(cache, table, 10_000, chunk=16)
    assert answer(again) == answer(first)
    assert table.computed_rows == 0
    assert cache.counters["hits"] == len(cache) == 7  # rows 1..100 span chunks 0..6


def test_the_newest_chunk_is_extended_with_only_the_added_rows() -> None:
    table, cache = Table(), PartCache()
    table.append([row(i) for i in range(20)])
    collected(cache, table, 10_000, chunk=16)
    table.append([row(i) for i in range(20, 24)])  # 21..24 go to chunk 1 (16..31)
    table.computed_rows = 0
    got = collected(cache, table, 10_000, chunk=16)
    assert answer(got) == answer(table.direct(10_000))
    assert table.computed_rows == sum(table.kept(row(i)) for i in range(20, 24))
    assert cache.counters["extended"] == 1


def test_an_evicted_chunk_is_computed_again_and_a_gone_one_left_out() -> None:
    table, cache = Table(), PartCache()
    table.append([row(i) for i in range(64)])
    collected(cache, table, 10_000, chunk=16)
    table.evict(20)  # rows 1..20 gone: chunk 0 (1..15) entirely, chunk 1 from 21 on
    got = collected(cache, table, 10_000, chunk=16)
    assert answer(got) == answer(table.direct(10_000))


def test_the_bound_keeps_the_newest_rows_and_the_cut_part_is_not_cached() -> None:
    table, cache = Table(), PartCache()
    table.append([row(i) for i in range(100)])
    got = collected(cache, table, 30, chunk=16)
    assert answer(got) == answer(table.direct(30))
    assert sum(acc.count for acc in got.values()) == 30
    assert answer(collected(cache, table, 30, chunk=16)) == answer(table.direct(30))


def test_uncacheable_filters_are_computed_whole_each_time() -> None:
    table, cache = Table(), PartCache()
    table.append([row(i) for i in range(40)])
    oldest, newest = table.bounds()
    parts = collect(cache, "map", table.compute, oldest, newest, 25, cacheable=False)
    assert len(parts) == 1 and len(cache) == 0
    assert answer(parts[0].groups) == answer(table.direct(25))


def test_an_empty_table_has_no_parts() -> None:
    assert collect(PartCache(), "map", Table().compute, 1, 0, 100) == []


def test_the_cache_stays_within_its_bytes_least_recently_used_out() -> None:
    table = Table()
    table.append([row(i) for i in range(8)])
    part = table.compute(1, 8, None)
    cache = PartCache(max_bytes=3 * part.nbytes())
    for key in ("a", "b", "c"):
        cache.put(key, part)
    assert cache.get("a") is part  # "a" is now the most recently used
    cache.put("d", part)
    assert cache.get("b") is None and cache.get("a") is part
    assert cache.bytes <= cache.max_bytes and len(cache) == 3
    assert cache.counters["evicted"] == 1
    small = PartCache(max_bytes=part.nbytes() - 1)
    small.put("a", part)  # bigger than the whole cache: not kept
    assert len(small) == 0 and small.bytes == 0


def test_default_chunk_is_a_round_number_of_rows() -> None:
    assert CHUNK == 16_384


steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 40)),
        st.tuples(st.just("evict"), st.integers(0, 30)),
        st.tuples(st.just("ask"), st.integers(1, 120)),
    ),
    max_size=25,
)


@given(steps=steps, chunk=st.sampled_from([1, 4, 16, 64]))
def test_cached_answers_equal_one_pass_whatever_happens(
    steps: list[tuple[str, int]], chunk: int
) -> None:
    table, cache = Table(), PartCache()
    for action, n in steps:
        if action == "add":
            table.append([row(table.next + i) for i in range(n)])
        elif action == "evict":
            table.evict(n)
        else:
            assert answer(collected(cache, table, n, chunk)) == answer(table.direct(n))


def test_a_question_too_big_to_keep_is_answered_in_one_pass() -> None:
    table, cache = Table(), PartCache(max_bytes=4_000)
    table.append([row(i) for i in range(400)])
    got = collected(cache, table, 10_000, chunk=16)
    assert answer(got) == answer(table.direct(10_000))
    assert "map" in cache.refused and cache.counters["refused"] == 1
    computed = cache.counters["computed"]
    assert answer(collected(cache, table, 10_000, chunk=16)) == answer(table.direct(10_000))
    assert cache.counters["computed"] == computed  # no chunk was tried again
