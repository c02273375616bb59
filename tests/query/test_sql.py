"""SQL pushdown: what translates, how values are bound, and agreement with the predicate
on a real in-memory SQLite table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotfish.model import Endpoint, Entry
from pilotfish.query import SQLITE_SETUP, compile_query
from pilotfish.query.fields import FIELDS
from pilotfish.query.sql import like_escape

from .strategies import combine, entries, sql_atoms

NOW = 1767227000.0
COLUMNS = {
    "protocol": "protocol",
    "method": "method",
    "path": "path",
    "summary": "summary",
    "node": "node",
    "status_code": "status_code",
    "elapsed_time": "elapsed_us",
    "timestamp": "ts",
    "src.pod": "src_pod",
    "src.ip": "src_ip",
    "src.port": "src_port",
    "dst.namespace": "dst_ns",
    "request.size": "req_size",
    "response.size": "resp_size",
    "tls": "tls",
}


def _entry(**kw: object) -> Entry:
    base: dict[str, object] = {
        "id": "n-1",
        "protocol": "http",
        "timestamp": 0.0,
        "elapsed_us": None,
        "src": Endpoint(ip="10.0.0.1", port=1),
        "dst": Endpoint(ip="10.0.0.2", port=80),
    }
    base.update(kw)
    return Entry(**base)  # type: ignore[arg-type]


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute(SQLITE_SETUP)
    conn.execute(f"CREATE TABLE entries ({', '.join(COLUMNS.values())})")
    yield conn
    conn.close()


def _load(conn: sqlite3.Connection, rows: list[Entry]) -> None:
    conn.execute("DELETE FROM entries")
    marks = ", ".join("?" * len(COLUMNS))
    conn.executemany(
        f"INSERT INTO entries (rowid, {', '.join(COLUMNS.values())}) VALUES (?, {marks})",
        [(i, *(FIELDS[f].getter(e) for f in COLUMNS)) for i, e in enumerate(rows)],
    )


def _selected(conn: sqlite3.Connection, text: str, rows: list[Entry]) -> set[int] | None:
    query = compile_query(text, clock=lambda: NOW)
    where = query.sql(COLUMNS)
    if where is None:
        return None
    found = {
        r for (r,) in conn.execute(f"SELECT rowid FROM entries WHERE {where.clause}", where.params)
    }
    if not where.exact:
        found = {i for i in found if query.match(rows[i])}
    return found


# --- what the translation looks like ----------------------------------------------------


def test_typical_filter_is_exact_and_bound() -> None:
    where = compile_query('http && method == "GET" && status_code >= 400').sql(COLUMNS)
    assert where is not None
    assert where.exact
    assert where.params == ["http", "GET", 400]
    assert "GET" not in where.clause and "400" not in where.clause


def test_now_is_read_when_sql_is_built() -> None:
    ticks = iter((100.0, 200.0))
    query = compile_query('timestamp > now() - duration("1m")', clock=lambda: next(ticks))
    assert query.sql(COLUMNS) == ("((ts) > ?)", [40.0], True)
    assert query.sql(COLUMNS) == ("((ts) > ?)", [140.0], True)


def test_partial_and_is_inexact() -> None:
    where = compile_query('http && path.matches("^/a")').sql(COLUMNS)
    assert where is not None and not where.exact
    assert where.params == ["http"]


@pytest.mark.parametrize(
    "text",
    [
        'http || path.matches("x")',
        '!(http && path.matches("x"))',
        "status == 200",
        "flags == []",
        '"a" in dns_questions',
    ],
)
def test_untranslatable_gives_none(text: str) -> None:
    assert compile_query(text).sql(COLUMNS) is None


def test_missing_column_is_not_pushed_down() -> None:
    assert compile_query('src.namespace == "a"').sql(COLUMNS) is None
    assert compile_query("http").sql({}) is None


def test_empty_query_and_constants() -> None:
    assert compile_query("").sql(COLUMNS) == ("1", [], True)
    assert compile_query("1 < 2").sql(COLUMNS) == ("?", [True], True)
    assert compile_query('"x".matches("y")').sql(COLUMNS) == ("?", [False], True)


def test_like_escaping() -> None:
    assert like_escape("50%_a\\b") == "50\\%\\_a\\\\b"
    where = compile_query('path.contains("5%_")').sql(COLUMNS)
    assert where is not None and where.params == ["%5\\%\\_%"]


def test_aliases_use_canonical_columns() -> None:
    where = compile_query("url == '/x' && request_size > 3").sql(COLUMNS)
    assert where == ("(((path) = ?) AND ((req_size) > ?))", ["/x", 3], True)


def test_empty_in_list_selects_nothing(db: sqlite3.Connection) -> None:
    rows = [_entry(method="GET")]
    _load(db, rows)
    assert _selected(db, "method in []", rows) == set()
    assert _selected(db, "!(method in [])", rows) == {0}


def test_like_is_case_sensitive_and_literal(db: sqlite3.Connection) -> None:
    rows = [_entry(path="/API"), _entry(path="/api"), _entry(path="/a_i"), _entry(path="/a%i")]
    _load(db, rows)
    assert _selected(db, 'path.startsWith("/api")', rows) == {1}
    assert _selected(db, 'path.contains("_")', rows) == {2}
    assert _selected(db, 'path.endsWith("%i")', rows) == {3}


def test_tls_field_counts_tls_protocol(db: sqlite3.Connection) -> None:
    rows = [_entry(protocol="tls"), _entry(tls=True), _entry()]
    _load(db, rows)
    assert _selected(db, "tls", rows) == {0, 1}
    assert _selected(db, "!tls", rows) == {2}


# --- the property: SQL (+ predicate when inexact) selects what the predicate selects --------


@settings(max_examples=200)
@given(rows=st.lists(entries(), min_size=1, max_size=12), text=combine(sql_atoms()))
def test_sql_agrees_with_predicate(rows: list[Entry], text: str) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(SQLITE_SETUP)
        conn.execute(f"CREATE TABLE entries ({', '.join(COLUMNS.values())})")
        _load(conn, rows)
        selected = _selected(conn, text, rows)
    finally:
        conn.close()
    query = compile_query(text, clock=lambda: NOW)
    expected = {i for i, e in enumerate(rows) if query.match(e)}
    if selected is not None:
        assert selected == expected, text
