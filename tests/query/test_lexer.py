"""The tokenizer: literals, operators, positions, and refusals of bad characters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.query import QueryError
from pilotfish.query.lexer import MAX_QUERY_LENGTH, tokenize


def _values(text: str) -> list[object]:
    return [
        t.value if t.kind in ("int", "float", "string") else t.text for t in tokenize(text)[:-1]
    ]


def test_operators_and_positions() -> None:
    tokens = tokenize("a&&b || !c<=1")
    assert [(t.kind, t.text, t.pos) for t in tokens] == [
        ("ident", "a", 0),
        ("op", "&&", 1),
        ("ident", "b", 3),
        ("op", "||", 5),
        ("op", "!", 8),
        ("ident", "c", 9),
        ("op", "<=", 10),
        ("int", "1", 12),
        ("eof", "", 13),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("2e3", 2000.0),
        (".5", 0.5),
        ("9223372036854775808", 2**63),  # allowed here for the negative minimum
        ('"a\\nb"', "a\nb"),
        ("'it\\'s'", "it's"),
        ('"\\x41\\u00e9\\U0001F600"', "Aé😀"),
        ('"\\101"', "A"),
        ('r"\\d+"', "\\d+"),
        ("'''multi\nline'''", "multi\nline"),
        ('""', ""),
    ],
)
def test_literals(text: str, value: object) -> None:
    assert _values(text) == [value]


def test_comments_and_whitespace_are_skipped() -> None:
    assert _values("a // note\n  == 1") == ["a", "==", 1]


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ('"abc', 0, "unterminated string"),
        ('x == "a\nb"', 7, "newline inside a string"),
        ('"\\q"', 1, "unknown escape"),
        ('"\\x4"', 1, "hex digits"),
        ('"\\uD800"', 1, "not a valid Unicode"),
        ("1u", 0, "unsigned"),
        ('b"x"', 0, "bytes literals"),
        ("12abc", 0, "malformed number"),
        ("99999999999999999999", 0, "int64 range"),
        ("a & b", 2, "did you mean '&&'"),
        ("a | b", 2, "did you mean '||'"),
        ("a = b", 2, "did you mean '=='"),
        ("a # b", 2, "unexpected character"),
    ],
)
def test_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(QueryError, match=message) as err:
        tokenize(text)
    assert err.value.position == position


def test_length_is_bounded() -> None:
    tokenize("a" * MAX_QUERY_LENGTH)
    with pytest.raises(QueryError, match="longer than"):
        tokenize("a" * (MAX_QUERY_LENGTH + 1))


@given(st.text(max_size=200))
def test_any_text_tokenizes_or_raises_query_error(text: str) -> None:
    try:
        tokens = tokenize(text)
    except QueryError as err:
        assert 0 <= err.position <= len(text)
    else:
        assert tokens[-1].kind == "eof"
        assert all(0 <= t.pos <= len(text) for t in tokens)


@given(st.text(st.characters(codec="utf-8"), max_size=30))
def test_string_literals_round_trip(value: str) -> None:
    import json

    assert _values(json.dumps(value, ensure_ascii=False)) == [value]
