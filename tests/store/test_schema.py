"""The entry table: the error rule, the derived transport and Entry -> row."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given

from pilotfish.model import Payload
from pilotfish.query.fields import FIELDS
from pilotfish.store import schema
from tests.query.strategies import entries
from tests.store.entries import make


@pytest.mark.parametrize(
    ("protocol", "status", "error"),
    [
        ("http", 200, False),
        ("http", 404, False),
        ("http", 500, True),
        ("http2", 503, True),
        ("http", None, False),
        ("grpc", 0, False),
        ("grpc", 14, True),
        ("grpc", "14", True),
        ("grpc", "0", False),
        ("dns", "NOERROR", False),
        ("dns", "NXDOMAIN", True),
        ("dns", "", False),
        ("redis", "ok", False),
        ("redis", "error", True),
        ("postgres", "error", True),
        ("tcp", None, False),
    ],
)
def test_error_rule(protocol: str, status: int | str | None, error: bool) -> None:
    assert schema.is_error(make(0, protocol=protocol, status=status)) is error


def test_transport_is_derived_from_the_protocol() -> None:
    assert schema.transport_of(make(0, protocol="http")) == "tcp"
    assert schema.transport_of(make(0, protocol="udp")) == "udp"
    assert schema.transport_of(make(0, protocol="dns")) == "udp"
    over_tcp = make(0, protocol="dns")
    over_tcp.request = Payload(info={"transport": "tcp"})
    assert schema.transport_of(over_tcp) == "tcp"


def test_columns_cover_every_scalar_field_except_dyn_and_lists() -> None:
    scalar = {k for k, f in FIELDS.items() if f.type in ("string", "int", "timestamp")}
    # bodies live only in the blob (a second copy would double the store); they are
    # filtered in Python
    assert scalar - set(schema.COLUMNS) == {"request.body", "response.body"}
    assert "tls" in schema.COLUMNS
    assert set(schema.COLUMNS.values()) <= set(schema.COLUMN_NAMES)


def test_row_of_an_unanswered_entry() -> None:
    entry = make(3, status=None, elapsed_us=None)
    entry.request = None
    entry.response = None
    row = dict(zip(schema.COLUMN_NAMES, schema.row_of(entry), strict=True))
    assert (row["elapsed"], row["answered"], row["status_code"], row["error"]) == (0, 0, 0, 0)
    assert (row["req_size"], row["resp_size"]) == (0, 0)
    assert schema.BLOB_DECODER.decode(row["blob"]) == entry


def test_absurd_numeric_status_strings_do_not_overflow() -> None:
    entry = make(0, protocol="grpc", status="9" * 40)
    row = dict(zip(schema.COLUMN_NAMES, schema.row_of(entry), strict=True))
    assert row["grpc_status"] == 0


@given(entry=entries())
def test_every_entry_fits_the_table(entry: object) -> None:
    conn = sqlite3.connect(":memory:")
    for statement in schema.SCHEMA:
        conn.execute(statement)
    conn.execute(schema.INSERT, schema.row_of(entry))  # type: ignore[arg-type]
    (blob,) = conn.execute("SELECT blob FROM entries").fetchone()
    assert schema.BLOB_DECODER.decode(blob) == entry
