"""Hypothesis strategies shared by the query tests: random entries and random filters."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from pilotfish.model import PROTOCOLS, Endpoint, Entry, Payload

# Small alphabets make collisions (and therefore matches) likely; `%`, `_` and `\` exercise
# LIKE escaping.  No NUL and no surrogates: SQLite text cannot hold them faithfully.
TEXT_ALPHABET = "ab-/%_\\é"
WORDS = ("", "a", "ab", "b", "a-b", "/a", "%", "_", "\\", "é", "GET", "POST")
texts = st.one_of(st.sampled_from(WORDS), st.text(TEXT_ALPHABET, max_size=5))
small_ints = st.one_of(st.integers(-3, 3), st.sampled_from((0, 200, 404, 500)))
ints = st.one_of(small_ints, st.integers(-(2**63), 2**63 - 1))


def endpoints() -> st.SearchStrategy[Endpoint]:
    return st.builds(
        Endpoint,
        ip=st.sampled_from(("10.0.0.1", "10.0.0.2", "::1")),
        port=small_ints,
        name=texts,
        pod=texts,
        namespace=texts,
        service=texts,
        node=texts,
    )


def payloads() -> st.SearchStrategy[Payload | None]:
    questions = st.lists(st.fixed_dictionaries({"name": texts, "type": st.just("A")}), max_size=2)
    answers = st.lists(st.fixed_dictionaries({"data": texts}), max_size=2)
    return st.none() | st.builds(
        Payload,
        size=small_ints,
        headers=st.dictionaries(
            st.sampled_from(("content-type", "Host", "X-A")), texts, max_size=2
        ),
        body=texts,
        questions=st.none() | questions,
        answers=st.none() | answers,
    )


def entries() -> st.SearchStrategy[Entry]:
    return st.builds(
        Entry,
        id=texts,
        protocol=st.sampled_from(PROTOCOLS),
        timestamp=st.sampled_from((0.0, 1767225600.0, 1767225600.5, 1767229200.0)),
        elapsed_us=st.none() | small_ints,
        src=endpoints(),
        dst=endpoints(),
        method=texts,
        path=texts,
        status=st.one_of(st.none(), small_ints, st.sampled_from(("ok", "error", "NXDOMAIN", "14"))),
        summary=texts,
        request=payloads(),
        response=payloads(),
        tls=st.booleans(),
        node=texts,
        flags=st.lists(st.sampled_from(("gap", "no-response")), max_size=2, unique=True),
    )


def literal(value: object) -> str:
    """A query literal for a Python value (JSON string escapes are valid CEL escapes)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


STRING_FIELDS = (
    "method",
    "path",
    "protocol",
    "summary",
    "node",
    "src.pod",
    "src.ip",
    "dst.namespace",
)
INT_FIELDS = ("status_code", "elapsed_time", "src.port", "request.size", "response.size")
BOOL_FIELDS = ("http", "dns", "grpc", "tcp", "tls")


def _comparisons() -> st.SearchStrategy[str]:
    ops = st.sampled_from(("==", "!=", "<", "<=", ">", ">="))
    string_side = st.sampled_from(STRING_FIELDS) | texts.map(literal)
    int_side = st.sampled_from(INT_FIELDS) | small_ints.map(str)
    return st.one_of(
        st.tuples(string_side, ops, string_side).map(" ".join),
        st.tuples(int_side, ops, int_side).map(" ".join),
    )


def _string_tests() -> st.SearchStrategy[str]:
    func = st.sampled_from(("startsWith", "endsWith", "contains"))
    return st.tuples(st.sampled_from(STRING_FIELDS), func, texts.map(literal)).map(
        lambda t: f"{t[0]}.{t[1]}({t[2]})"
    )


def _in_lists() -> st.SearchStrategy[str]:
    strings = st.tuples(st.sampled_from(STRING_FIELDS), st.lists(texts.map(literal), max_size=3))
    numbers = st.tuples(st.sampled_from(INT_FIELDS), st.lists(small_ints.map(str), max_size=3))
    return (strings | numbers).map(lambda t: f"{t[0]} in [{', '.join(t[1])}]")


def _sizes() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(STRING_FIELDS), small_ints).map(
        lambda t: f"size({t[0]}) >= {t[1]}"
    )


def shared_atoms() -> st.SearchStrategy[str]:
    """Conditions that both pilotfish and a plain CEL evaluator understand the same way."""
    return st.one_of(
        st.sampled_from(BOOL_FIELDS[:-1]),
        _comparisons(),
        _string_tests(),
        _in_lists(),
        _sizes(),
        st.tuples(st.sampled_from(INT_FIELDS), st.sampled_from("+-*/%"), ints.map(str)).map(
            lambda t: f"{t[0]} {t[1]} {t[2]} > 0"
        ),
        st.sampled_from(("true", "false")),
    )


def sql_atoms() -> st.SearchStrategy[str]:
    """Conditions for the SQL tests: the shared ones plus some that cannot be pushed down."""
    return st.one_of(
        shared_atoms(),
        st.sampled_from(
            (
                "tls",
                'path.matches("^/a")',
                '"a" in dns_questions',
                "status == 200",
                'timestamp > now() - duration("30m")',
                'timestamp >= timestamp("2026-01-01T00:00:00Z")',
                'request.headers["host"] == "a"',
                "tls == http",
            )
        ),
    )


def combine(atoms: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Random `&&`, `||`, `!` and parentheses over the given conditions."""
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(("&&", "||")), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            inner.map(lambda x: f"!({x})"),
        ),
        max_leaves=6,
    )
