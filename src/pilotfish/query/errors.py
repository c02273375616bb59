"""`QueryError`: the one exception a bad query raises, pointing at a column."""

from __future__ import annotations


class QueryError(ValueError):
    """A query that cannot be compiled.

    `position` is the 0-based column in the query text where the problem was found;
    `reason` is the message without the position, `str(err)` includes it
    ("expected ')' at column 17").
    """

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at column {position}")
        self.reason = reason
        self.position = position
