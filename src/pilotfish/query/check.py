"""Name resolution and static type checking of a parsed query.

`check(node)` replaces dotted names by `Field` nodes (aliases folded to canonical names,
`m.key` on a map turned into `m["key"]`), verifies every operator and function against the
types in `query.fields`, and returns the resolved tree with a type for every node.  Obvious
mistakes fail here with a `QueryError` at the right column: unknown fields (with a "did you
mean" suggestion), unknown functions, a string field compared with a number, arithmetic on
strings.  Values typed "dyn" (`status`) are checked at run time instead.
Int and double may be compared with each other; arithmetic needs matching number types (as
in CEL).  The result of the whole query must be a bool.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pilotfish.query import ast
from pilotfish.query.errors import QueryError
from pilotfish.query.fields import (
    ALIASES,
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    FIELDS,
    FUNCTIONS,
    INT,
    LIST_DYN,
    NULL,
    STRING,
    TIMESTAMP,
)

_NUMBERS = frozenset((INT, DOUBLE))
_ORDERED = frozenset((INT, DOUBLE, STRING, TIMESTAMP, DURATION, BOOL))
_ARITHMETIC: dict[tuple[str, str, str], str] = {
    **{(op, t, t): t for op in "+-*/" for t in (INT, DOUBLE)},
    ("%", INT, INT): INT,
    ("+", STRING, STRING): STRING,
    ("+", TIMESTAMP, DURATION): TIMESTAMP,
    ("+", DURATION, TIMESTAMP): TIMESTAMP,
    ("+", DURATION, DURATION): DURATION,
    ("-", TIMESTAMP, TIMESTAMP): DURATION,
    ("-", TIMESTAMP, DURATION): TIMESTAMP,
    ("-", DURATION, DURATION): DURATION,
}
_NEGATABLE = frozenset((INT, DOUBLE, DURATION, DYN))


@dataclass(frozen=True, slots=True)
class Checked:
    """A resolved tree and the type of each of its nodes (keyed by node identity)."""

    root: ast.Node
    types: dict[int, str]

    def type_of(self, node: ast.Node) -> str:
        return self.types[id(node)]


def check(node: ast.Node) -> Checked:
    """Resolve and type-check a parsed query; it must produce a bool."""
    checker = _Checker()
    root, kind = checker.visit(node)
    if kind not in (BOOL, DYN):
        raise QueryError(f"a filter must be a condition (bool), this one gives {kind}", node.pos)
    return Checked(root, checker.types)


def element_type(kind: str) -> str:
    """`list(string)` -> `string`; the value type of a map; dyn otherwise."""
    if kind.startswith("list("):
        return kind[5:-1]
    if kind.startswith("map("):
        return kind[4:-1].split(", ", 1)[1]
    return DYN


def equality_compatible(left: str, right: str) -> bool:
    """Whether `==` between the two types can ever be meaningful."""
    if left == right or DYN in (left, right):
        return True
    if left in _NUMBERS and right in _NUMBERS:
        return True
    if left[:5] == right[:5] == "list(" or left[:4] == right[:4] == "map(":
        return equality_compatible(element_type(left), element_type(right))
    return False


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _dotted(node: ast.Node) -> str | None:
    if isinstance(node, ast.Ident):
        return node.name
    if isinstance(node, ast.Select):
        head = _dotted(node.operand)
        return None if head is None else f"{head}.{node.name}"
    return None


def _start(node: ast.Node) -> int:
    while isinstance(node, ast.Select):
        node = node.operand
    return node.pos


class _Checker:
    def __init__(self) -> None:
        self.types: dict[int, str] = {}

    def _typed(self, node: ast.Node, kind: str) -> tuple[ast.Node, str]:
        self.types[id(node)] = kind
        return node, kind

    def visit(self, node: ast.Node) -> tuple[ast.Node, str]:
        if isinstance(node, ast.Const):
            return self._typed(node, _const_type(node.value))
        if isinstance(node, ast.ListLit):
            items = [self.visit(i) for i in node.items]
            kinds = {k for _, k in items}
            kind = f"list({kinds.pop()})" if len(kinds) == 1 else LIST_DYN
            return self._typed(ast.ListLit(tuple(n for n, _ in items), node.pos), kind)
        if isinstance(node, ast.Ident | ast.Select):
            return self._name(node)
        if isinstance(node, ast.Index):
            operand, kind = self.visit(node.operand)
            index, index_kind = self.visit(node.index)
            return self._index(operand, kind, index, index_kind, node.pos)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Unary):
            return self._unary(node)
        if isinstance(node, ast.Binary):
            return self._binary(node)
        if isinstance(node, ast.Logic):
            operands = []
            for item in node.operands:
                child, kind = self.visit(item)
                if kind not in (BOOL, DYN):
                    raise QueryError(
                        f"'{node.op}' needs conditions (bool) on both sides, got {kind}", item.pos
                    )
                operands.append(child)
            return self._typed(ast.Logic(node.op, tuple(operands), node.pos), BOOL)
        return self._typed(node, FIELDS[node.name].type)

    def _name(self, node: ast.Ident | ast.Select) -> tuple[ast.Node, str]:
        dotted = _dotted(node)
        if dotted is not None:
            canonical = ALIASES.get(dotted, dotted)
            spec = FIELDS.get(canonical)
            if spec is not None:
                return self._typed(ast.Field(canonical, _start(node)), spec.type)
        if isinstance(node, ast.Select) and (
            _dotted(node.operand) is None or self._known(node.operand)
        ):
            operand, kind = self.visit(node.operand)
            if kind.startswith("map(") or kind == DYN:
                key, key_kind = self._typed(ast.Const(node.name, node.pos + 1), STRING)
                return self._index(operand, kind, key, key_kind, node.pos)
            raise QueryError(f"{kind} has no field '{node.name}'", node.pos + 1)
        name = dotted or "?"
        choices = [*FIELDS, *ALIASES]
        raise QueryError(f"unknown field '{name}'{_suggest(name, choices)}", _start(node))

    def _known(self, node: ast.Node) -> bool:
        dotted = _dotted(node)
        return dotted is not None and ALIASES.get(dotted, dotted) in FIELDS

    def _index(
        self, operand: ast.Node, kind: str, index: ast.Node, index_kind: str, pos: int
    ) -> tuple[ast.Node, str]:
        if kind.startswith("map("):
            wanted = STRING
        elif kind.startswith("list("):
            wanted = INT
        elif kind == DYN:
            return self._typed(ast.Index(operand, index, pos), DYN)
        else:
            raise QueryError(f"cannot index a {kind}", pos)
        if index_kind not in (wanted, DYN):
            raise QueryError(f"index of a {kind} must be {wanted}, got {index_kind}", index.pos)
        return self._typed(ast.Index(operand, index, pos), element_type(kind))

    def _call(self, node: ast.Call) -> tuple[ast.Node, str]:
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            raise QueryError(
                f"unknown function '{node.name}'{_suggest(node.name, list(FUNCTIONS))}", node.pos
            )
        target = None if node.target is None else self.visit(node.target)
        args = [self.visit(a) for a in node.args]
        receiver = None if target is None else target[1]
        arg_kinds = tuple(k for _, k in args)
        for overload in spec.overloads:
            if _applies(overload.receiver, overload.args, receiver, arg_kinds):
                call_target = None if target is None else target[0]
                call = ast.Call(node.name, call_target, tuple(n for n, _ in args), node.pos)
                return self._typed(call, overload.result)
        shapes = ", ".join(_signature(node.name, o.receiver, o.args) for o in spec.overloads)
        got = _signature(node.name, receiver, arg_kinds)
        raise QueryError(f"no overload {got}; expected {shapes}", node.pos)

    def _unary(self, node: ast.Unary) -> tuple[ast.Node, str]:
        operand, kind = self.visit(node.operand)
        allowed = (BOOL, DYN) if node.op == "!" else _NEGATABLE
        if kind not in allowed:
            raise QueryError(f"'{node.op}' cannot apply to {kind}", node.pos)
        return self._typed(ast.Unary(node.op, operand, node.pos), BOOL if node.op == "!" else kind)

    def _binary(self, node: ast.Binary) -> tuple[ast.Node, str]:
        left, lk = self.visit(node.left)
        right, rk = self.visit(node.right)
        op = node.op
        out = ast.Binary(op, left, right, node.pos)
        if op in ("==", "!="):
            if not equality_compatible(lk, rk):
                raise QueryError(f"'{op}' cannot compare {lk} with {rk}", node.pos)
            return self._typed(out, BOOL)
        if op in ("<", "<=", ">", ">="):
            ok = lk in _ORDERED and rk in _ORDERED and (lk == rk or {lk, rk} <= _NUMBERS)
            if not ok and not (DYN in (lk, rk) and {lk, rk} <= _ORDERED | {DYN}):
                raise QueryError(f"'{op}' cannot order {lk} and {rk}", node.pos)
            return self._typed(out, BOOL)
        if op == "in":
            if rk == DYN or (rk.startswith("list(") and equality_compatible(lk, element_type(rk))):
                return self._typed(out, BOOL)
            if rk.startswith("map(") and lk in (STRING, DYN):
                return self._typed(out, BOOL)
            raise QueryError(f"'in' cannot look for {lk} in {rk}", node.pos)
        if DYN in (lk, rk):
            return self._typed(out, DYN)
        if op == "+" and lk.startswith("list(") and rk.startswith("list("):
            return self._typed(out, lk if lk == rk else LIST_DYN)
        result = _ARITHMETIC.get((op, lk, rk))
        if result is None:
            raise QueryError(f"'{op}' cannot combine {lk} and {rk}", node.pos)
        return self._typed(out, result)


def _const_type(value: object) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return DOUBLE
    return STRING


def _fits(wanted: str | None, got: str | None) -> bool:
    if wanted is None or got is None:
        return wanted is got
    if got == DYN or wanted == got:
        return True
    return wanted in ("list", "map") and got.startswith(wanted + "(")


def _applies(
    receiver: str | None, args: tuple[str, ...], got_receiver: str | None, got: tuple[str, ...]
) -> bool:
    if not _fits(receiver, got_receiver) or len(args) != len(got):
        return False
    return all(_fits(w, g) for w, g in zip(args, got, strict=True))


def _signature(name: str, receiver: str | None, args: tuple[str, ...]) -> str:
    head = name if receiver is None else f"{receiver}.{name}"
    return f"{head}({', '.join(args)})"
