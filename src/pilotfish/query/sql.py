"""Checked query tree -> SQL WHERE clause with bound parameters, for store pushdown.

`build_sql(checked, columns, clock)` translates comparisons, `&&`, `||`, `!`, `in` over a
constant list, `startsWith`/`endsWith`/`contains` (LIKE with `\\` escaping), `size()` of a
string, protocol booleans and every field-free sub-expression (computed now, `now()`
included, and bound as a parameter).  Values are always bound (`?`), never interpolated.
A `&&` whose conjuncts are only partly translatable keeps the translatable ones and marks the
result `exact=False`: the caller must still run the predicate on the rows.  Anything else that
cannot be translated makes the whole result None (filter in Python instead).

The ColumnMap contract: keys are canonical field names (`protocol`, `status_code`,
`elapsed_time`, `timestamp`, `src.pod`, `request.size`, `tls`, ...), values SQL expressions
holding the value exactly as the predicate reads it: never NULL (absent values stored as ""
or 0, or the expression wraps them, e.g. "COALESCE(elapsed_us, 0)"), timestamps as epoch
seconds, booleans as 0/1, text compared with BINARY collation.  LIKE must be case sensitive:
on SQLite run `SQLITE_SETUP` on the connection first.  Fields absent from the map, dyn,
list and map fields are never pushed down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, TypeAlias

from pilotfish.query import ast
from pilotfish.query import values as v
from pilotfish.query.check import Checked
from pilotfish.query.errors import QueryError
from pilotfish.query.fields import BOOL, DOUBLE, DYN, INT, STRING, TIMESTAMP
from pilotfish.query.predicate import constant_evaluator

ColumnMap: TypeAlias = Mapping[str, str]
SQLITE_SETUP: Final = "PRAGMA case_sensitive_like = ON"
_SQL_OPS: Final = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "=", "!=": "<>"}
_SCALARS: Final = frozenset((BOOL, INT, DOUBLE, STRING, TIMESTAMP))
_NUMERIC: Final = frozenset((INT, DOUBLE, TIMESTAMP))
_LIKE: Final = {"startsWith": ("", "%"), "endsWith": ("%", ""), "contains": ("%", "%")}


class SqlWhere(NamedTuple):
    """A WHERE clause, its parameters, and whether it selects exactly the matching rows."""

    clause: str
    params: list[object]
    exact: bool


class _Frag(NamedTuple):
    text: str
    params: list[object]
    exact: bool


def build_sql(checked: Checked, columns: ColumnMap, clock: Callable[[], float]) -> SqlWhere | None:
    """Translate the query for the given columns; None when nothing useful translates."""
    frag = _Translator(checked, columns, clock).condition(checked.root)
    return None if frag is None else SqlWhere(frag.text, frag.params, frag.exact)


def like_escape(text: str) -> str:
    """Escape LIKE wildcards with backslashes (used with `ESCAPE '\\'`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Translator:
    def __init__(self, checked: Checked, columns: ColumnMap, clock: Callable[[], float]) -> None:
        self._checked = checked
        self._columns = columns
        self._evaluate = constant_evaluator(checked, clock)

    def _type(self, node: ast.Node) -> str:
        return self._checked.type_of(node)

    def _constant(self, node: ast.Node) -> tuple[bool, Any]:
        if _has_field(node):
            return False, None
        try:
            return True, self._evaluate(node)
        except (*v.ERRORS, QueryError):
            return False, None

    def condition(self, node: ast.Node) -> _Frag | None:
        """A bool-valued node as an SQL condition."""
        known, constant = self._constant(node)
        if known:
            return _Frag("?", [constant], True) if isinstance(constant, bool) else None
        if isinstance(node, ast.Logic):
            return self._logic(node)
        if isinstance(node, ast.Unary) and node.op == "!":
            inner = self.condition(node.operand)
            if inner is None or not inner.exact:
                return None
            return _Frag(f"NOT {inner.text}", inner.params, True)
        if isinstance(node, ast.Binary) and node.op == "in":
            return self._in(node)
        if isinstance(node, ast.Call) and node.name in _LIKE:
            return self._like(node)
        if isinstance(node, ast.Field | ast.Const) or (
            isinstance(node, ast.Binary) and node.op in _SQL_OPS
        ):
            return self.value(node)
        return None

    def value(self, node: ast.Node) -> _Frag | None:
        """A scalar node as an SQL expression (comparisons give 0/1)."""
        known, constant = self._constant(node)
        if known:
            if constant is None or isinstance(constant, list | dict):
                return None
            return _Frag("?", [constant], True)
        if isinstance(node, ast.Field):
            return self._field(node)
        if isinstance(node, ast.Binary) and node.op in _SQL_OPS:
            return self._compare(node)
        if isinstance(node, ast.Call) and node.name == "size" and not node.args:
            return self._size(node.target)
        if isinstance(node, ast.Call) and node.name == "size" and len(node.args) == 1:
            return self._size(node.args[0])
        if (
            isinstance(node, ast.Logic | ast.Unary | ast.Binary | ast.Call)
            and self._type(node) == BOOL
        ):
            frag = self.condition(node)  # only the node kinds condition() handles itself
            return frag if frag is not None and frag.exact else None
        return None

    def _field(self, node: ast.Field) -> _Frag | None:
        name = node.name
        if name == "tls":
            tls, protocol = self._columns.get("tls"), self._columns.get("protocol")
            if tls is None or protocol is None:
                return None
            return _Frag(f"({tls} <> 0 OR {protocol} = ?)", ["tls"], True)
        if self._type(node) == BOOL and name not in self._columns:
            protocol = self._columns.get("protocol")
            return None if protocol is None else _Frag(f"({protocol} = ?)", [name], True)
        column = self._columns.get(name)
        if column is None or self._type(node) not in _SCALARS:
            return None
        return _Frag(f"({column})", [], True)

    def _compare(self, node: ast.Binary) -> _Frag | None:
        kinds = {self._type(node.left), self._type(node.right)}
        if DYN in kinds or not kinds <= _SCALARS or (len(kinds) > 1 and not kinds <= _NUMERIC):
            return None
        left, right = self.value(node.left), self.value(node.right)
        if left is None or right is None:
            return None
        text = f"({left.text} {_SQL_OPS[node.op]} {right.text})"
        return _Frag(text, left.params + right.params, True)

    def _size(self, node: ast.Node | None) -> _Frag | None:
        if node is None or self._type(node) != STRING:
            return None
        inner = self.value(node)
        return None if inner is None else _Frag(f"length({inner.text})", inner.params, True)

    def _in(self, node: ast.Binary) -> _Frag | None:
        kind = self._type(node.left)
        known, items = self._constant(node.right)
        if not known or kind not in _SCALARS or not isinstance(items, list):
            return None
        wanted = (int, float) if kind in _NUMERIC else (str,) if kind == STRING else (bool,)
        if not all(isinstance(i, wanted) and isinstance(i, bool) == (kind == BOOL) for i in items):
            return None
        needle = self.value(node.left)
        if needle is None:
            return None
        if not items:
            return _Frag("(0)", [], True)
        marks = ", ".join("?" * len(items))
        return _Frag(f"({needle.text} IN ({marks}))", needle.params + list(items), True)

    def _like(self, node: ast.Call) -> _Frag | None:
        if node.target is None:
            return None
        subject = self.value(node.target)
        known, part = self._constant(node.args[0])
        if subject is None or not known or not isinstance(part, str):
            return None
        before, after = _LIKE[node.name]
        pattern = before + like_escape(part) + after
        return _Frag(f"({subject.text} LIKE ? ESCAPE '\\')", [*subject.params, pattern], True)

    def _logic(self, node: ast.Logic) -> _Frag | None:
        parts = [self.condition(o) for o in node.operands]
        done = [p for p in parts if p is not None]
        if node.op == "||" and len(done) < len(parts):
            return None
        if not done:
            return None
        joiner = " AND " if node.op == "&&" else " OR "
        text = "(" + joiner.join(p.text for p in done) + ")"
        params = [x for p in done for x in p.params]
        exact = len(done) == len(parts) and all(p.exact for p in done)
        return _Frag(text, params, exact)


def _has_field(node: ast.Node) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Field):
            return True
        stack.extend(ast.children(item))
    return False
