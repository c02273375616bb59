"""The syntax tree of a pilotfish query, as built by `query.parser`.

Nodes are small frozen dataclasses; every node records `pos`, the 0-based column in the
query text where it starts, so later stages (the type checker, the SQL translator) can point
errors at the right place.  `Field` never comes out of the parser: the checker puts it in
place of a resolved `Ident`/`Select` chain.  `&&` and `||` chains are n-ary (`Logic`) so long
filters stay shallow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Const:
    """A literal: int, float, str, bool or None (null)."""

    value: int | float | str | bool | None
    pos: int


@dataclass(frozen=True, slots=True)
class ListLit:
    """`[a, b, ...]`."""

    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Ident:
    """A bare name: `method`, `http`, `src` (before resolution)."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Select:
    """`operand.name` (not followed by a call)."""

    operand: Node
    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Index:
    """`operand[index]`."""

    operand: Node
    index: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    """`name(args)` or, with a target, `target.name(args)`."""

    name: str
    target: Node | None
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Unary:
    """`!x` or `-x`."""

    op: str
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic, comparison and `in`: `left op right`; `pos` is the operator's column."""

    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Logic:
    """An `&&` or `||` chain: `operands[0] op operands[1] op ...`."""

    op: str
    operands: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Field:
    """A resolved field from the field table (`src.pod`, `status_code`, ...)."""

    name: str
    pos: int


Node: TypeAlias = Const | ListLit | Ident | Select | Index | Call | Unary | Binary | Logic | Field


def dump(node: Node) -> str:
    """A compact, fully parenthesized rendering of the tree (used by tests and debugging)."""
    if isinstance(node, Const):
        return repr(node.value)
    if isinstance(node, ListLit):
        return "[" + ", ".join(dump(i) for i in node.items) + "]"
    if isinstance(node, Ident | Field):
        return node.name
    if isinstance(node, Select):
        return f"{dump(node.operand)}.{node.name}"
    if isinstance(node, Index):
        return f"{dump(node.operand)}[{dump(node.index)}]"
    if isinstance(node, Call):
        args = ", ".join(dump(a) for a in node.args)
        head = node.name if node.target is None else f"{dump(node.target)}.{node.name}"
        return f"{head}({args})"
    if isinstance(node, Unary):
        return f"({node.op}{dump(node.operand)})"
    if isinstance(node, Binary):
        return f"({dump(node.left)} {node.op} {dump(node.right)})"
    return "(" + f" {node.op} ".join(dump(o) for o in node.operands) + ")"


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of `node`."""
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, Select):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, Call):
        return node.args if node.target is None else (node.target, *node.args)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Logic):
        return node.operands
    return ()
