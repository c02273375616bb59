"""Recursive-descent parser: query text -> `query.ast` tree, with CEL precedence.

Precedence, loosest first: `||`, `&&`, relations (`< <= > >= == != in`), `+ -`,
`* / %`, unary `! -`, member access (`.name`, `.f(args)`, `[index]`), primaries (literals,
names, calls, `( )`, `[ ]` lists).  The ternary `?:`, map literals and `.`-rooted names are not
part of the subset and are refused with a clear error.
Limits: nesting (parentheses, lists, calls, indexes, unary chains) and the depth of the
resulting tree are both capped at `MAX_DEPTH`; longer `&&`/`||` chains are flattened and do
not count against it.  Every error is a `QueryError` carrying the column of the offending
token.
"""

from __future__ import annotations

from typing import Final

from pilotfish.query import ast
from pilotfish.query.errors import QueryError
from pilotfish.query.lexer import INT64_MAX, Token, tokenize

MAX_DEPTH: Final = 64
_LEVELS: Final = {
    "||": 1,
    "&&": 2,
    **dict.fromkeys(("<", "<=", ">", ">=", "==", "!=", "in"), 3),
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
}
_RESERVED: Final = frozenset(
    (
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    )
)


def parse(text: str) -> ast.Node | None:
    """Parse a whole query; an empty (or all-whitespace) query gives None."""
    parser = _Parser(tokenize(text))
    if parser.peek().kind == "eof":
        return None
    node = parser.expression()
    token = parser.peek()
    if token.kind != "eof":
        raise QueryError(
            f"expected an operator or the end of the query, got {_show(token)}", token.pos
        )
    _check_depth(node)
    return node


def _show(token: Token) -> str:
    return "the end of the query" if token.kind == "eof" else repr(token.text)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._at = 0
        self._nesting = 0

    # --- token helpers -------------------------------------------------------------------

    def peek(self) -> Token:
        return self._tokens[self._at]

    def _next(self) -> Token:
        token = self._tokens[self._at]
        if token.kind != "eof":
            self._at += 1
        return token

    def _is_op(self, ops: frozenset[str] | str) -> bool:
        token = self._tokens[self._at]
        if token.kind == "op" or (token.kind == "ident" and token.text == "in"):
            return token.text in ops if isinstance(ops, frozenset) else token.text == ops
        return False

    def _expect(self, op: str) -> Token:
        token = self.peek()
        if token.kind != "op" or token.text != op:
            raise QueryError(f"expected '{op}', got {_show(token)}", token.pos)
        return self._next()

    def _enter(self, pos: int) -> None:
        self._nesting += 1
        if self._nesting > MAX_DEPTH:
            raise QueryError(f"expression nested deeper than {MAX_DEPTH} levels", pos)

    # --- grammar -------------------------------------------------------------------------

    def expression(self) -> ast.Node:
        self._enter(self.peek().pos)
        node = self._operators(1)
        if self._is_op("?"):
            raise QueryError("the conditional operator '?:' is not supported", self.peek().pos)
        self._nesting -= 1
        return node

    def _operators(self, min_level: int) -> ast.Node:
        """Precedence climbing over the binary operators at `min_level` and tighter."""
        left = self._unary()
        while True:
            token = self.peek()
            level = _LEVELS.get(token.text) if token.kind in ("op", "ident") else None
            if level is None or level < min_level:
                return left
            self._next()
            right = self._operators(level + 1)
            if token.text in ("&&", "||"):
                left = _chain(token, left, right)
            else:
                left = ast.Binary(token.text, left, right, token.pos)

    def _unary(self) -> ast.Node:
        prefix: list[Token] = []
        while self._is_op("!") or self._is_op("-"):
            prefix.append(self._next())
            if len(prefix) > MAX_DEPTH:
                raise QueryError(
                    f"expression nested deeper than {MAX_DEPTH} levels", prefix[-1].pos
                )
        node = self._member()
        for token in reversed(prefix):
            if token.text == "-" and isinstance(node, ast.Const) and _is_number(node.value):
                assert isinstance(node.value, int | float)
                node = ast.Const(-node.value, token.pos)
            else:
                node = ast.Unary(token.text, node, token.pos)
        if isinstance(node, ast.Const) and isinstance(node.value, int) and node.value > INT64_MAX:
            raise QueryError("integer literal out of int64 range", node.pos)
        return node

    def _member(self) -> ast.Node:
        node = self._primary()
        while True:
            if self._is_op("."):
                dot = self._next()
                name = self.peek()
                if name.kind != "ident":
                    raise QueryError(
                        f"expected a field or function name after '.', got {_show(name)}", name.pos
                    )
                self._next()
                if self._is_op("("):
                    node = ast.Call(name.text, node, self._arguments(), name.pos)
                else:
                    node = ast.Select(node, name.text, dot.pos)
            elif self._is_op("["):
                bracket = self._next()
                index = self.expression()
                self._expect("]")
                node = ast.Index(node, index, bracket.pos)
            else:
                return node

    def _arguments(self) -> tuple[ast.Node, ...]:
        self._expect("(")
        return self._items(")")

    def _items(self, close: str) -> tuple[ast.Node, ...]:
        items: list[ast.Node] = []
        while not self._is_op(close):
            items.append(self.expression())
            if not self._is_op(","):
                break
            self._next()
        token = self.peek()
        if not self._is_op(close):
            raise QueryError(f"expected ',' or '{close}', got {_show(token)}", token.pos)
        self._next()
        return tuple(items)

    def _primary(self) -> ast.Node:
        token = self.peek()
        kind = token.kind
        if kind in ("int", "float", "string"):
            self._next()
            return ast.Const(token.value, token.pos)
        if kind == "ident":
            return self._name(token)
        if kind == "op":
            if token.text == "(":
                self._next()
                node = self.expression()
                self._expect(")")
                return node
            if token.text == "[":
                self._next()
                self._enter(token.pos)
                items = self._items("]")
                self._nesting -= 1
                return ast.ListLit(items, token.pos)
            if token.text == "{":
                raise QueryError("map literals are not supported", token.pos)
            if token.text == ".":
                raise QueryError("'.'-rooted names are not supported", token.pos)
        raise QueryError(f"expected an expression, got {_show(token)}", token.pos)

    def _name(self, token: Token) -> ast.Node:
        self._next()
        word = token.text
        if word in ("true", "false"):
            return ast.Const(word == "true", token.pos)
        if word == "null":
            return ast.Const(None, token.pos)
        if word in _RESERVED or word == "in":
            raise QueryError(f"'{word}' is a reserved word", token.pos)
        if self._is_op("("):
            return ast.Call(word, None, self._arguments(), token.pos)
        return ast.Ident(word, token.pos)


def _chain(token: Token, left: ast.Node, right: ast.Node) -> ast.Logic:
    """Extend an `&&`/`||` chain (chains stay flat; both operators are associative)."""
    if isinstance(left, ast.Logic) and left.op == token.text:
        return ast.Logic(token.text, (*left.operands, right), left.pos)
    return ast.Logic(token.text, (left, right), token.pos)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_depth(root: ast.Node) -> None:
    """Refuse trees deeper than MAX_DEPTH (left-deep `a + b + c ...` chains included)."""
    stack: list[tuple[ast.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise QueryError(f"expression nested deeper than {MAX_DEPTH} levels", node.pos)
        stack.extend((child, depth + 1) for child in ast.children(node))
