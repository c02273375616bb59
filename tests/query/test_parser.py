"""The parser: every construct, CEL precedence, and errors with their columns."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.query import QueryError
from pilotfish.query.ast import Binary, Const, Logic, dump
from pilotfish.query.parser import MAX_DEPTH, parse


def _dump(text: str) -> str:
    node = parse(text)
    assert node is not None
    return dump(node)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a || b && c", "(a || (b && c))"),
        ("a && b || c", "((a && b) || c)"),
        ("a && b && c", "(a && b && c)"),
        ("a == 1 && b", "((a == 1) && b)"),
        ("1 + 2 * 3 < 7", "((1 + (2 * 3)) < 7)"),
        ("(1 + 2) * 3", "((1 + 2) * 3)"),
        ("a - b - c", "((a - b) - c)"),
        ("a / b % c", "((a / b) % c)"),
        ("!a && b", "((!a) && b)"),
        ("!!a", "(!(!a))"),
        ("-x * 2", "((-x) * 2)"),
        ("-5", "-5"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("x in [1, 2,]", "(x in [1, 2])"),
        ("[]", "[]"),
        ("a.b.c", "a.b.c"),
        ("a.b(1, 'x')", "a.b(1, 'x')"),
        ("f()", "f()"),
        ("m['k'].size()", "m['k'].size()"),
        ("a[0][1]", "a[0][1]"),
        ("true && false || null == x", "((True && False) || (None == x))"),
        ("1 < 2 == true", "((1 < 2) == True)"),
        ("'a' + 'b' in l", "(('a' + 'b') in l)"),
    ],
)
def test_precedence_and_constructs(text: str, tree: str) -> None:
    assert _dump(text) == tree


def test_empty_query_is_none() -> None:
    assert parse("") is None
    assert parse("  // just a comment") is None


def test_positions_are_recorded() -> None:
    node = parse("http && status >= 400")
    assert isinstance(node, Logic) and node.pos == 5
    cmp = node.operands[1]
    assert isinstance(cmp, Binary) and cmp.pos == 15
    assert isinstance(cmp.right, Const) and cmp.right.pos == 18


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("(http || grpc", 13, "expected ')'"),
        ("http &&", 7, "expected an expression"),
        ("http && && dns", 8, "expected an expression"),
        ("method == ", 10, "expected an expression"),
        ("f(1, 2", 6, "expected ',' or ')'"),
        ("[1, 2", 5, "expected ',' or ']'"),
        ("a[1", 3, "expected ']'"),
        ("a.", 2, "field or function name"),
        ("a.1", 1, "expected an operator"),  # ".1" is a number
        ("http dns", 5, "expected an operator or the end"),
        ("a ? b : c", 2, "conditional operator"),
        ("{'a': 1}", 0, "map literals"),
        (".a", 0, "'.'-rooted"),
        ("if == 1", 0, "reserved word"),
        ("9223372036854775808", 0, "int64 range"),
        (")", 0, "expected an expression"),
    ],
)
def test_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)) as err:
        parse(text)
    assert err.value.position == position
    assert f"at column {position}" in str(err.value)


def test_nesting_is_bounded() -> None:
    ok = "(" * (MAX_DEPTH - 1) + "a" + ")" * (MAX_DEPTH - 1)
    assert _dump(ok) == "a"
    for deep in (
        "(" * 65 + "a" + ")" * 65,
        "!" * 100 + "a",
        "[" * 70 + "]" * 70,
        "f(" * 70 + ")" * 70,
    ):
        with pytest.raises(QueryError, match="nested deeper"):
            parse(deep)


def test_long_left_chains_are_bounded_but_logic_chains_are_flat() -> None:
    with pytest.raises(QueryError, match="nested deeper"):
        parse(" + ".join(["1"] * 100))
    node = parse(" && ".join(["a"] * 500))
    assert isinstance(node, Logic) and len(node.operands) == 500


_ATOMS = st.sampled_from(
    ("a", "b.c", "1", "2.5", "'s'", "true", "f(x)", "x.g(1)", "[1, 2]", "m['k']")
)


@given(
    st.recursive(
        _ATOMS,
        lambda inner: st.one_of(
            st.tuples(
                inner, st.sampled_from(("&&", "||", "==", "<", "+", "*", "in", "-", "%")), inner
            ).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda x: f"!({x})"),
        ),
        max_leaves=12,
    )
)
def test_dump_reparses_to_the_same_tree(text: str) -> None:
    first = _dump(text)
    assert _dump(first.replace("True", "true").replace("False", "false")) == first
