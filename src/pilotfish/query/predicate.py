"""Checked query tree -> a Python predicate over `Entry`, built once from nested closures.

`build_predicate(checked, clock)` returns `match(entry) -> bool`.  Field-free sub-trees are
computed once at build time (a constant that cannot be computed, e.g. `duration("5x")`, is a
`QueryError` at its column); `field op constant` comparisons, constant `in` lists (as
frozensets) and constant regexes get specialised closures so a typical 3-term filter costs a
handful of Python calls per entry.  `now()` reads the injected clock at each evaluation.
Errors while evaluating (overflow, a dyn value of the wrong type, ...) follow CEL:
`false && error` is false, `true || error` is true, otherwise the entry does not match.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from pilotfish.model import Entry
from pilotfish.query import ast
from pilotfish.query import values as v
from pilotfish.query.check import Checked
from pilotfish.query.errors import QueryError
from pilotfish.query.fields import DOUBLE, DYN, FIELDS, INT, MAP_STRING

Fn = Callable[[Entry], Any]
_ORDER: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_SIMPLE_CALLS: Final[dict[str, Callable[..., Any]]] = {
    "startsWith": str.startswith,
    "endsWith": str.endswith,
    "contains": operator.contains,
    "size": len,
    "lowerAscii": v.lower_ascii,
    "upperAscii": v.upper_ascii,
    "int": v.to_int,
    "double": v.to_double,
    "string": v.to_string,
    "timestamp": v.parse_timestamp,
    "duration": v.parse_duration,
}


def build_predicate(checked: Checked, clock: Callable[[], float]) -> Callable[[Entry], bool]:
    """Compile the checked tree into `match(entry) -> bool` (errors mean no match)."""
    fn = _Builder(checked, clock).bool_fn(checked.root)

    def match(entry: Entry) -> bool:
        try:
            return fn(entry) is True
        except v.ERRORS:
            return False

    return match


class _Builder:
    def __init__(self, checked: Checked, clock: Callable[[], float]) -> None:
        self._checked = checked
        self._clock = clock
        self._consts: dict[int, Any] = {}

    def _const(self, node: ast.Node) -> tuple[bool, Any]:
        if id(node) in self._consts:
            return True, self._consts[id(node)]
        return False, None

    def bool_fn(self, node: ast.Node) -> Fn:
        """Like build(), but a dyn result is checked to be a bool."""
        fn = self.build(node)
        if self._checked.type_of(node) != DYN:
            return fn

        def as_bool(entry: Entry) -> bool:
            value = fn(entry)
            if type(value) is not bool:
                raise v.EvalError("condition is not a bool")
            return value

        return as_bool

    def build(self, node: ast.Node) -> Fn:
        if isinstance(node, ast.Const):
            return self._fold(node, node.value)
        if isinstance(node, ast.Field):
            return FIELDS[node.name].getter
        fn = self._build(node)
        if not self._is_constant(node):
            return fn
        try:
            value = fn(None)  # type: ignore[arg-type]  # constants never read the entry
        except (*v.ERRORS, RecursionError) as err:
            raise QueryError(f"cannot compute this constant: {err}", node.pos) from None
        return self._fold(node, value)

    def _fold(self, node: ast.Node, value: Any) -> Fn:
        self._consts[id(node)] = value
        return lambda entry: value

    def _is_constant(self, node: ast.Node) -> bool:
        if isinstance(node, ast.Call) and node.name == "now":
            return False
        return all(id(c) in self._consts for c in ast.children(node))

    def _build(self, node: ast.Node) -> Fn:
        if isinstance(node, ast.ListLit):
            items = tuple(self.build(i) for i in node.items)
            return lambda entry: [f(entry) for f in items]
        if isinstance(node, ast.Index):
            return self._index(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Unary):
            return self._unary(node)
        if isinstance(node, ast.Binary):
            if node.op in _ORDER:
                return self._compare(node)
            if node.op == "in":
                return self._in(node)
            return self._arith(node)
        if isinstance(node, ast.Logic):
            return self._logic(node)
        raise AssertionError(f"unresolved node {node!r}")  # the checker removed the rest

    def _index(self, node: ast.Index) -> Fn:
        container, key = self.build(node.operand), self.build(node.index)
        kind = self._checked.type_of(node.operand)
        if kind == MAP_STRING:
            known, const_key = self._const(node.index)
            if known:
                return lambda entry: v.header(container(entry), const_key)
            return lambda entry: v.header(container(entry), key(entry))

        def item(entry: Entry) -> Any:
            seq, at = container(entry), key(entry)
            if isinstance(seq, list) and type(at) is int and not 0 <= at < len(seq):
                raise v.EvalError("index out of range")
            return seq[at]

        return item

    def _call(self, node: ast.Call) -> Fn:
        args = [self.build(a) for a in node.args]
        if node.target is not None:
            args.insert(0, self.build(node.target))
        if node.name == "now":
            return lambda entry: self._clock()
        if node.name == "matches":
            return self._matches(node, args)
        impl = _SIMPLE_CALLS[node.name]
        if len(args) == 1:
            (one,) = args
            return lambda entry: impl(one(entry))
        first, second = args
        return lambda entry: impl(first(entry), second(entry))

    def _matches(self, node: ast.Call, args: list[Fn]) -> Fn:
        subject, pattern = args
        pattern_node = node.args[-1]
        known, text = self._const(pattern_node)
        if known:
            try:
                search = v.compile_pattern(text).search
            except v.EvalError as err:
                raise QueryError(str(err), pattern_node.pos) from None
            return lambda entry: search(subject(entry)) is not None
        return lambda entry: v.compile_pattern(pattern(entry)).search(subject(entry)) is not None

    def _unary(self, node: ast.Unary) -> Fn:
        if node.op == "!":
            operand = self.bool_fn(node.operand)
            return lambda entry: not operand(entry)
        inner = self.build(node.operand)
        if self._checked.type_of(node.operand) == INT:
            return lambda entry: v.check_int(-inner(entry))

        def negate(entry: Entry) -> Any:
            value = inner(entry)
            if type(value) is int:
                return v.check_int(-value)
            if type(value) is float:
                return -value
            raise v.EvalError("'-' needs a number")

        return negate

    def _compare(self, node: ast.Binary) -> Fn:
        left, right = self.build(node.left), self.build(node.right)
        dyn = DYN in (self._checked.type_of(node.left), self._checked.type_of(node.right))
        if dyn and node.op in ("==", "!="):
            negate = node.op == "!="
            return lambda entry: v.dyn_equal(left(entry), right(entry)) is not negate
        op = _ORDER[node.op]
        known, const = self._const(node.right)
        if known:
            return lambda entry: op(left(entry), const)
        known, const = self._const(node.left)
        if known:
            return lambda entry: op(const, right(entry))
        return lambda entry: op(left(entry), right(entry))

    def _in(self, node: ast.Binary) -> Fn:
        needle, haystack = self.build(node.left), self.build(node.right)
        kind = self._checked.type_of(node.right)
        if kind == MAP_STRING:
            return lambda entry: v.has_header(haystack(entry), needle(entry))
        known, items = self._const(node.right)
        if known and isinstance(items, list) and _plain(items):
            members = frozenset(items)
            return lambda entry: needle(entry) in members

        def contains(entry: Entry) -> bool:
            value, seq = needle(entry), haystack(entry)
            if isinstance(seq, dict):
                return value in seq
            if not isinstance(seq, list):
                raise v.EvalError("'in' needs a list or a map")
            return any(v.dyn_equal(value, item) for item in seq)

        return contains

    def _arith(self, node: ast.Binary) -> Fn:
        left, right = self.build(node.left), self.build(node.right)
        kind = self._checked.type_of(node)
        op: Callable[[Any, Any], Any]
        if kind == INT:
            op = v.INT_OPS[node.op]
        elif kind == DYN:
            name = node.op
            return lambda entry: v.dyn_arith(name, left(entry), right(entry))
        elif kind == DOUBLE or node.op in ("-", "*", "/"):
            op = v.DOUBLE_OPS[node.op]
        else:  # string, list, timestamp/duration `+`
            op = operator.add
        return lambda entry: op(left(entry), right(entry))

    def _logic(self, node: ast.Logic) -> Fn:
        fns = tuple(self.bool_fn(o) for o in node.operands)
        stop = node.op == "||"  # the value that decides the chain

        def chain(entry: Entry) -> bool:
            error: Exception | None = None
            for fn in fns:
                try:
                    if fn(entry) is stop:
                        return stop  # type: ignore[no-any-return]  # stop is a bool
                except v.ERRORS as err:
                    error = err
            if error is not None:
                raise error
            return not stop

        return chain


def _plain(items: list[Any]) -> bool:
    """A constant list safe to turn into a frozenset (one hashable type, no bool/number mix)."""
    kinds = {type(i) for i in items}
    return len(kinds) <= 1 and not kinds & {list, dict, float}


def constant_evaluator(checked: Checked, clock: Callable[[], float]) -> Callable[[ast.Node], Any]:
    """A function computing the value of a field-free sub-tree now (raises on errors)."""
    builder = _Builder(checked, clock)
    return lambda node: builder.build(node)(None)  # type: ignore[arg-type]
