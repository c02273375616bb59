"""QueryError: a ValueError that carries the column and a readable message."""

from __future__ import annotations

from pilotfish.query.errors import QueryError


def test_query_error_carries_position_and_reason() -> None:
    err = QueryError("expected ')'", 17)
    assert isinstance(err, ValueError)
    assert err.position == 17
    assert err.reason == "expected ')'"
    assert str(err) == "expected ')' at column 17"
