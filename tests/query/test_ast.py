"""The syntax tree helpers: rendering and child enumeration."""

from __future__ import annotations

from pilotfish.query import ast


def test_dump_and_children_cover_every_node() -> None:
    a, one = ast.Ident("a", 0), ast.Const(1, 4)
    nodes: list[tuple[ast.Node, str, int]] = [
        (ast.ListLit((a, one), 0), "[a, 1]", 2),
        (ast.Select(a, "b", 1), "a.b", 1),
        (ast.Index(a, one, 1), "a[1]", 2),
        (ast.Call("f", None, (one,), 0), "f(1)", 1),
        (ast.Call("g", a, (one,), 2), "a.g(1)", 2),
        (ast.Unary("!", a, 0), "(!a)", 1),
        (ast.Binary("+", a, one, 2), "(a + 1)", 2),
        (ast.Logic("&&", (a, a, a), 2), "(a && a && a)", 3),
        (ast.Field("src.pod", 0), "src.pod", 0),
        (ast.Const(None, 0), "None", 0),
    ]
    for node, text, count in nodes:
        assert ast.dump(node) == text
        assert len(ast.children(node)) == count
