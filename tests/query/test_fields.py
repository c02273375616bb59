"""The field and function table: complete, typed, documented, and readable on any entry."""

from __future__ import annotations

from hypothesis import given

from pilotfish.model import PROTOCOLS, Endpoint, Entry
from pilotfish.query import compile_query
from pilotfish.query.fields import ALIASES, FIELDS, FUNCTIONS, catalog

from .strategies import entries

_PYTHON_TYPES = {
    "bool": bool,
    "int": int,
    "string": str,
    "timestamp": float,
    "list(string)": list,
}


def test_every_protocol_has_a_boolean() -> None:
    for protocol in PROTOCOLS:
        assert FIELDS[protocol].type == "bool"


def test_every_field_and_function_has_help_and_compiles() -> None:
    for spec in FIELDS.values():
        assert spec.help
        compile_query(f"{spec.name} == {spec.name}")
    for alias, canonical in ALIASES.items():
        assert canonical in FIELDS
        compile_query(f"{alias} == {canonical}")
    for func in FUNCTIONS.values():
        assert func.help and func.overloads


def test_catalog_lists_everything_once() -> None:
    items = catalog()
    names = [(i["kind"], i["name"]) for i in items]
    assert len(names) == len(set(names)) == len(FIELDS) + len(ALIASES) + len(FUNCTIONS)
    assert all(i["help"] for i in items)


def test_minimal_entry_reads_defaults() -> None:
    entry = Entry(
        id="",
        protocol="tcp",
        timestamp=0.0,
        elapsed_us=None,
        src=Endpoint(ip="", port=0),
        dst=Endpoint(ip="", port=0),
    )
    assert FIELDS["elapsed_time"].getter(entry) == 0
    assert FIELDS["status_code"].getter(entry) == 0
    assert FIELDS["request.headers"].getter(entry) == {}
    assert FIELDS["response.body"].getter(entry) == ""
    assert FIELDS["dns_questions"].getter(entry) == []
    assert FIELDS["grpc_status"].getter(entry) == 0


@given(entries())
def test_getters_return_their_declared_type(entry: Entry) -> None:
    for spec in FIELDS.values():
        value = spec.getter(entry)
        wanted = _PYTHON_TYPES.get(spec.type)
        if wanted is not None:
            assert isinstance(value, wanted), spec.name
        elif spec.type.startswith("map("):
            assert all(isinstance(k, str) and isinstance(x, str) for k, x in value.items())
