"""Name resolution and type checking: fields, aliases, functions, obvious type mistakes."""

from __future__ import annotations

import re

import pytest

from pilotfish.query import QueryError
from pilotfish.query.ast import Field, Index, dump
from pilotfish.query.check import check, element_type, equality_compatible
from pilotfish.query.parser import parse


def _check(text: str) -> str:
    node = parse(text)
    assert node is not None
    return dump(check(node).root)


def test_dotted_names_become_fields_and_aliases_fold() -> None:
    node = parse("src.pod == url")
    assert node is not None
    checked = check(node)
    assert dump(checked.root) == "(src.pod == path)"
    assert checked.type_of(checked.root) == "bool"


def test_map_select_becomes_index() -> None:
    node = parse("request.headers.host == 'a'")
    assert node is not None
    root = check(node).root
    assert dump(root) == "(request.headers['host'] == 'a')"
    index = root.left  # type: ignore[union-attr]
    assert isinstance(index, Index) and isinstance(index.operand, Field)


def test_types_are_recorded() -> None:
    node = parse("size(path) + 1 > 2 && timestamp - duration('1s') < now()")
    assert node is not None
    checked = check(node)
    assert checked.type_of(checked.root) == "bool"
    assert element_type("list(string)") == "string"
    assert element_type("map(string, string)") == "string"
    assert element_type("int") == "dyn"


@pytest.mark.parametrize(
    ("a", "b", "ok"),
    [
        ("int", "double", True),
        ("string", "int", False),
        ("dyn", "list(int)", True),
        ("list(string)", "list(dyn)", True),
        ("list(int)", "list(string)", False),
    ],
)
def test_equality_compatibility(a: str, b: str, ok: bool) -> None:
    assert equality_compatible(a, b) is ok


@pytest.mark.parametrize(
    "text",
    [
        "status == 'ok' || status == 200",
        "status in [1, 'a']",
        "elapsed_time > 1.5",
        "flags + ['x'] == flags",
        "'x' in request.headers",
        "dns_questions[0] == 'a'",
        "tls == http",
        "-elapsed_time < 0",
        "now() - timestamp > duration('1h')",
    ],
)
def test_well_typed(text: str) -> None:
    _check(text)


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("http && stauts == 1", 8, "unknown field 'stauts' (did you mean 'status'?)"),
        ("src.pdo == 'a'", 0, "unknown field 'src.pdo' (did you mean 'src.pod'?)"),
        ("src == 'a'", 0, "unknown field 'src'"),
        ("method.foo == 'a'", 7, "string has no field 'foo'"),
        ("method == 400", 7, "'==' cannot compare string with int"),
        ("status_code == '200'", 12, "cannot compare int with string"),
        ("method > 1", 7, "cannot order string and int"),
        ("timestamp > 5", 10, "cannot order timestamp and int"),
        ("method + 1 == 'a'", 7, "cannot combine string and int"),
        ("elapsed_time + 1.5 > 0", 13, "cannot combine int and double"),
        ("1 in method", 2, "'in' cannot look for int in string"),
        ("1 in dns_questions", 2, "cannot look for int in list(string)"),
        ("!method", 0, "'!' cannot apply to string"),
        ("-method == ''", 0, "'-' cannot apply to string"),
        ("method && http", 0, "needs conditions (bool)"),
        ("method", 0, "a filter must be a condition"),
        ("foo(1)", 0, "unknown function 'foo'"),
        ("path.startswith('a')", 5, "unknown function 'startswith' (did you mean 'startsWith'?)"),
        ("path.startsWith(1)", 5, "no overload string.startsWith(int)"),
        ("size(1) > 0", 0, "no overload size(int)"),
        ("now(1) > timestamp", 0, "no overload now(int)"),
        ("method[0] == 'a'", 6, "cannot index a string"),
        ("request.headers[1] == 'a'", 16, "index of a map(string, string) must be string"),
        ("flags['a'] == 'b'", 6, "must be int"),
    ],
)
def test_errors(text: str, position: int, message: str) -> None:
    node = parse(text)
    assert node is not None
    with pytest.raises(QueryError, match=re.escape(message)) as err:
        check(node)
    assert err.value.position == position
