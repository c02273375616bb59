"""Merging workers' pages: composite cursors, merge order, and the rule that no entry is
taken while a cut-short worker might still hold a newer one.  The property test pages
through real SQLite stores (one per worker) and compares with the union in time order."""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotfish.hub.paging import (
    Request,
    decode_cursor,
    encode_cursor,
    merge_pages,
    worker_key,
)
from pilotfish.model import Entry
from pilotfish.query import compile_query
from pilotfish.store.base import Page
from pilotfish.store.sqlite import SqliteStore
from tests.store.entries import T0, make

A, B = worker_key("http://a:8899"), worker_key("http://b:8899")


def test_cursor_round_trip_and_refusals() -> None:
    assert len(A) == 8 and A != B and worker_key("http://a:8899") == A
    text = encode_cursor({A: 12, B: 0})
    assert decode_cursor(text) == {A: 12, B: 0} and decode_cursor("h") == {}
    for bad in ("12", "h.", f"h.{A}-x", f"h.{A}-{'9' * 19}", "h.zzzzzzzz-1", f"h.{A}-1." * 300):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def _page(ids_ts: list[tuple[str, float]], positions: list[int], older: str | None) -> Page:
    entries = [msgspec.structs.replace(make(0, ts=ts), id=i) for i, ts in ids_ts]
    return Page(entries, older=older, newer=str(max(positions, default=0)), positions=positions)


def test_merge_by_time_ties_by_worker_order() -> None:
    pages = {
        A: _page([("a2", T0 + 2), ("a1", T0 + 1)], [5, 3], None),
        B: _page([("b2", T0 + 2), ("b0", T0)], [9, 8], None),
    }
    page = merge_pages(Request(10, keys=[A, B]), pages)
    assert [e.id for e in page.entries] == ["a2", "b2", "a1", "b0"]
    assert page.older is None and decode_cursor(page.newer or "") == {A: 5, B: 9}


def test_a_cut_worker_with_nothing_left_stops_the_page() -> None:
    # b's scan hit its bound after one match: its next entry could be newer than a's rest
    pages = {
        A: _page([("a5", T0 + 5), ("a4", T0 + 4), ("a1", T0 + 1)], [6, 5, 2], None),
        B: _page([("b3", T0 + 3)], [40], "30"),
    }
    page = merge_pages(Request(10, keys=[A, B]), pages)
    assert [e.id for e in page.entries] == ["a5", "a4", "b3"]
    older = decode_cursor(page.older or "")
    assert older == {A: 2 + 1, B: 30}  # a resumes at a1, b where its scan stopped


def test_workers_not_asked_keep_their_place() -> None:
    pages = {A: _page([("a1", T0 + 1), ("a0", T0)], [4, 3], "3")}
    page = merge_pages(Request(1, before={A: 9, B: 77}, keys=[A, B]), pages)
    assert [e.id for e in page.entries] == ["a1"]
    assert decode_cursor(page.older or "") == {A: 3 + 1, B: 77}
    assert decode_cursor(page.newer or "") == {A: 4, B: 76}


def test_paging_ends_when_every_worker_that_answered_is_exhausted() -> None:
    # b is down: its place stays in `newer`, but a client paging older is not kept looping
    pages = {A: _page([("a1", T0 + 1)], [4], None)}
    page = merge_pages(Request(5, before={A: 9, B: 77}, keys=[A, B]), pages)
    assert [e.id for e in page.entries] == ["a1"] and page.older is None
    assert decode_cursor(page.newer or "")[B] == 76


def test_positions_must_match_entries() -> None:
    bad = Page([make(1)], positions=[])
    with pytest.raises(ValueError):
        merge_pages(Request(5, keys=[A]), {A: bad})


def _store(root: Path, name: str, entries: list[Entry]) -> SqliteStore:
    store = SqliteStore(root / f"{name}.db", max_scan=7)
    store.add(entries)
    store.commit()
    return store


@settings(max_examples=25, deadline=None)
@given(
    owners=st.lists(st.booleans(), min_size=0, max_size=60),
    limit=st.integers(1, 9),
    text=st.sampled_from(("", "status_code >= 500", 'path.matches("[05]$")')),
)
def test_paging_real_stores_returns_the_union_once(
    owners: list[bool], limit: int, text: str
) -> None:
    entries = {A: [], B: []}  # type: dict[str, list[Entry]]
    for i, on_a in enumerate(owners):
        e = make(i, status=500 if i % 3 == 0 else 200, path=f"/p/{i}", ts=T0 + i // 2)
        entries[A if on_a else B].append(
            msgspec.structs.replace(e, id=f"{'a' if on_a else 'b'}{i}")
        )
    query = compile_query(text) if text else None
    with tempfile.TemporaryDirectory() as tmp:
        stores = {k: _store(Path(tmp), k, v) for k, v in entries.items()}
        try:
            got: list[str] = []
            cursor: str | None = None
            for _ in range(500):
                request = Request(
                    limit, None if cursor is None else decode_cursor(cursor), keys=[A, B]
                )
                pages = {}
                for key, store in stores.items():
                    before, _after = request.cursors_for(key)
                    pages[key] = store.query(query, limit, before)
                page = merge_pages(request, pages)
                got += [e.id for e in page.entries]
                cursor = page.older
                if cursor is None:
                    break
        finally:
            for store in stores.values():
                store.close()
    union = [e for k in (A, B) for e in entries[k] if query is None or query.match(e)]
    order = {A: 0, B: 1}
    union.sort(key=lambda e: (-e.timestamp, order[A if e.id[0] == "a" else B], -int(e.id[1:])))
    assert got == [e.id for e in union]


@settings(max_examples=25, deadline=None)
@given(
    before=st.lists(st.booleans(), max_size=20),
    arriving=st.lists(st.booleans(), min_size=1, max_size=40),
    limit=st.integers(1, 6),
    text=st.sampled_from(("", "status_code >= 500", 'path.matches("[05]$")')),
)
def test_newer_pages_over_real_stores_bring_each_arrival_once(
    before: list[bool], arriving: list[bool], limit: int, text: str
) -> None:
    query = compile_query(text) if text else None

    def entry(i: int, on_a: bool) -> Entry:
        e = make(i, status=500 if i % 3 == 0 else 200, path=f"/p/{i}", ts=T0 + i // 2)
        return msgspec.structs.replace(e, id=f"{'a' if on_a else 'b'}{i}")

    def ask(stores: dict[str, SqliteStore], request: Request) -> Page:
        pages = {}
        for key, store in stores.items():
            b, a = request.cursors_for(key)
            pages[key] = store.query(query, limit, b, a)
        return merge_pages(request, pages)

    with tempfile.TemporaryDirectory() as tmp:
        old = [entry(i, on_a) for i, on_a in enumerate(before)]
        stores = {
            A: _store(Path(tmp), "a", [e for e in old if e.id[0] == "a"]),
            B: _store(Path(tmp), "b", [e for e in old if e.id[0] == "b"]),
        }
        try:
            first = ask(stores, Request(limit, keys=[A, B]))
            new = [entry(len(before) + i, on_a) for i, on_a in enumerate(arriving)]
            for key, name in ((A, "a"), (B, "b")):
                stores[key].add([e for e in new if e.id[0] == name])
                stores[key].commit()
            seen: list[str] = []
            cursor = first.newer or ""
            for _ in range(500):
                page = ask(stores, Request(limit, after=decode_cursor(cursor), keys=[A, B]))
                seen += [e.id for e in reversed(page.entries)]
                if not page.entries and page.newer == cursor:
                    break
                cursor = page.newer or ""
        finally:
            for store in stores.values():
                store.close()
    wanted = [e.id for e in new if query is None or query.match(e)]
    assert sorted(seen) == sorted(wanted) and len(seen) == len(set(seen))
