"""The pilotfish query language: a CEL subset compatible with Kubeshark's KFL2 filters.

    q = compile_query('http && method == "GET" && status_code >= 400')
    q.match(entry)                 # -> bool, the live-stream predicate
    q.sql({"protocol": "protocol", "method": "method", "status_code": "status_code"})
                                   # -> SqlWhere(clause, params, exact) | None, for the store

A query is parsed, type-checked and compiled once; bad queries raise `QueryError` (a
ValueError) whose `.position` is the 0-based column of the problem.  The empty query matches
everything.  `FIELDS`, `FUNCTIONS` and `catalog()` describe what can be written, with help
strings, for autocomplete.  Limits: queries are at most 4096 characters and 64 levels deep.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pilotfish.model import Entry
from pilotfish.query import ast
from pilotfish.query.check import check
from pilotfish.query.errors import QueryError
from pilotfish.query.fields import ALIASES, FIELDS, FUNCTIONS, catalog
from pilotfish.query.parser import parse
from pilotfish.query.predicate import build_predicate
from pilotfish.query.sql import SQLITE_SETUP, ColumnMap, SqlWhere, build_sql

__all__ = [
    "ALIASES",
    "FIELDS",
    "FUNCTIONS",
    "SQLITE_SETUP",
    "ColumnMap",
    "Query",
    "QueryError",
    "SqlWhere",
    "catalog",
    "compile_query",
]


def _everything(entry: Entry) -> bool:
    return True


class Query:
    """A compiled filter: `match()` for entries, `sql()` for store pushdown."""

    __slots__ = ("_checked", "clock", "match", "text", "timeless")

    def __init__(self, text: str, clock: Callable[[], float] = time.time) -> None:
        self.text = text
        self.clock = clock
        tree = parse(text)
        self._checked = None if tree is None else check(tree)
        # False when the answer depends on when it is asked (`now()`): never cache it
        self.timeless = self._checked is None or not _reads_clock(self._checked.root)
        self.match: Callable[[Entry], bool] = (
            _everything if self._checked is None else build_predicate(self._checked, self._now)
        )

    def _now(self) -> float:
        return self.clock()

    def sql(self, columns: ColumnMap) -> SqlWhere | None:
        """A WHERE clause for `columns` (see `query.sql`); `now()` is read at this call.

        The empty query gives `SqlWhere("1", [], True)`; None means "filter in Python".
        """
        if self._checked is None:
            return SqlWhere("1", [], True)
        return build_sql(self._checked, columns, self._now)

    def filter(self, entries: list[Entry]) -> list[Entry]:
        """The entries of a batch that match, in order."""
        match = self.match
        return [e for e in entries if match(e)]

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def _reads_clock(node: ast.Node) -> bool:
    if isinstance(node, ast.Call) and node.name == "now":
        return True
    return any(_reads_clock(child) for child in ast.children(node))


def compile_query(text: str, clock: Callable[[], float] = time.time) -> Query:
    """Parse, check and compile `text`; raises QueryError with the column on bad input."""
    return Query(text, clock)
