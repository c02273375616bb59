"""The public face of `pilotfish.query`: compile_query, Query.match/filter/sql, and fuzzing:
any text either compiles or raises QueryError, quickly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotfish.model import Endpoint, Entry
from pilotfish.query import Query, QueryError, SqlWhere, compile_query

from .strategies import entries

BRIEF_EXAMPLES = [
    'http && method == "GET" && status_code >= 400',
    'dns && "example.com" in dns_questions',
    "grpc && grpc_status != 0",
    'src.pod.startsWith("cart-") && elapsed_time > 5000000',
    'timestamp > now() - duration("5m")',
    "!dns",
    '(http || grpc) && dst.namespace == "shop"',
    'request.headers["content-type"].contains("json")',
    'path.matches("^/api/v[0-9]+/")',
    "size(path) > 10",
    'method in ["GET", "HEAD"]',
    'src.ip == "10.0.0.1"',
    'protocol == "redis"',
    'timestamp > timestamp("2026-01-01T00:00:00Z")',
    "",
]


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


@pytest.mark.parametrize("text", BRIEF_EXAMPLES)
def test_brief_examples_compile(text: str) -> None:
    query = compile_query(text, clock=lambda: 0.0)
    assert isinstance(query, Query)
    assert isinstance(query.match(_entry()), bool)


def test_filter_keeps_order_and_matches() -> None:
    rows = [_entry(method=m) for m in ("GET", "POST", "HEAD", "GET")]
    assert [e.method for e in compile_query('method in ["GET", "HEAD"]').filter(rows)] == [
        "GET",
        "HEAD",
        "GET",
    ]
    assert compile_query("").filter(rows) == rows


def test_sql_for_empty_query() -> None:
    assert compile_query("").sql({}) == SqlWhere("1", [], True)


def test_repr_and_errors_are_value_errors() -> None:
    assert repr(compile_query("http")) == "Query('http')"
    with pytest.raises(ValueError):
        compile_query("http &&")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(http || grpc", "expected ')', got the end of the query at column 13"),
        ("http && stauts == 200", "unknown field 'stauts' (did you mean 'status'?) at column 8"),
        (
            'path.startswth("a")',
            "unknown function 'startswth' (did you mean 'startsWith'?) at column 5",
        ),
        ("method == 400", "'==' cannot compare string with int at column 7"),
    ],
)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(QueryError) as err:
        compile_query(text)
    assert str(err.value) == message


_TOKENS = st.sampled_from(
    (
        "http",
        "method",
        "src",
        ".",
        "pod",
        "(",
        ")",
        "[",
        "]",
        ",",
        "&&",
        "||",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        "==",
        "<",
        ">=",
        "in",
        '"a"',
        "'b'",
        "1",
        "2.5",
        "true",
        "null",
        "size",
        "startsWith",
        "now",
        "duration",
        "request",
        "headers",
        "status",
        "?",
        ":",
        "{",
        "}",
        " ",
        "\\",
        '"',
        "1e999",
        "0x",
    )
)


def _fuzz(text: str, entry: Entry) -> None:
    try:
        query = compile_query(text, clock=lambda: 0.0)
    except QueryError as err:
        assert 0 <= err.position <= len(text)
        return
    assert isinstance(query.match(entry), bool)
    result = query.sql({"protocol": "protocol", "method": "method", "status_code": "s"})
    assert result is None or isinstance(result.clause, str)


@settings(max_examples=300)
@given(st.lists(_TOKENS, max_size=40).map("".join), entries())
def test_token_soup_only_raises_query_error(text: str, entry: Entry) -> None:
    _fuzz(text, entry)


@given(st.text(max_size=300), entries())
def test_random_text_only_raises_query_error(text: str, entry: Entry) -> None:
    _fuzz(text, entry)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000,
        "!" * 4000 + "http",
        "-" * 4000 + "1 > 0",
        "[" * 2000 + "]" * 2000,
        "a." * 2000 + "b",
        "f(" * 2000,
        " + ".join(["1"] * 1000),
        " && ".join(["http"] * 1000),
        "x" * 10_000,
        '"' + "a" * 5000,
    ],
)
def test_hostile_inputs_fail_cleanly(text: str) -> None:
    try:
        query = compile_query(text)
    except QueryError:
        return
    assert query.match(_entry()) in (True, False)


@pytest.mark.parametrize(
    ("text", "timeless"),
    [
        ("", True),
        ('http && status_code >= 500 && path.startsWith("/api")', True),
        ('timestamp > timestamp("2026-01-01T00:00:00Z")', True),
        ('timestamp > now() - duration("15m")', False),
        ("http && (status_code > 400 || [now()].size() > 0)", False),
    ],
)
def test_a_query_says_whether_its_answer_depends_on_the_clock(text: str, timeless: bool) -> None:
    assert compile_query(text).timeless is timeless
