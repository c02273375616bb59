"""The entry table of the SQLite store: DDL, the query ColumnMap and Entry -> row.

One row per entry.  Every scalar query field has a column holding exactly what the query
predicate reads (never NULL: absent strings are "", absent numbers 0, booleans 0/1), so
`Query.sql(COLUMNS)` pushes filters down exactly.  The full entry is kept as msgpack in
`blob` for `get()` and pages; bodies, headers, flags and DNS lists live only there (filters
on them run in Python on the rows the SQL part selected).

Derived columns, computed once at insert:
- `error`: the one error rule of pilotfish (see `is_error`).
- `answered`: 1 when `elapsed_us` is known; latency percentiles only count those rows.
- `transport`: "udp" for `udp` and `dns` entries (unless the DNS payload says
  `info["transport"] == "tcp"`), "tcp" for everything else.

`seq` is the row's INTEGER PRIMARY KEY (AUTOINCREMENT, so never reused): insertion order,
newest = largest, and the opaque paging cursor.  Rows are only ever deleted from the oldest
end, so the live rows are exactly the contiguous range [min(seq), max(seq)].
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import msgspec

from pilotfish.model import Entry

BLOB_ENCODER: Final = msgspec.msgpack.Encoder()
BLOB_DECODER: Final = msgspec.msgpack.Decoder(Entry)

# (column, SQL type) in insert order, blob last.
_ENDPOINT_ATTRS: Final = ("ip", "port", "name", "pod", "namespace", "service", "node")
_COLUMN_TYPES: Final[tuple[tuple[str, str], ...]] = (
    ("id", "TEXT"),
    ("protocol", "TEXT"),
    ("ts", "REAL"),
    ("elapsed", "INTEGER"),
    ("answered", "INTEGER"),
    ("method", "TEXT"),
    ("path", "TEXT"),
    ("status_code", "INTEGER"),
    ("dns_rcode", "TEXT"),
    ("grpc_status", "INTEGER"),
    ("summary", "TEXT"),
    ("node", "TEXT"),
    ("stream", "TEXT"),
    ("capture", "TEXT"),
    ("tls", "INTEGER"),
    ("error", "INTEGER"),
    ("transport", "TEXT"),
    *(
        (f"{side}_{attr}", "INTEGER" if attr == "port" else "TEXT")
        for side in ("src", "dst")
        for attr in _ENDPOINT_ATTRS
    ),
    ("req_size", "INTEGER"),
    ("resp_size", "INTEGER"),
    ("blob", "BLOB"),
)
COLUMN_NAMES: Final = tuple(name for name, _ in _COLUMN_TYPES)

COLUMNS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "protocol": "protocol",
        "method": "method",
        "path": "path",
        "status_code": "status_code",
        "elapsed_time": "elapsed",
        "timestamp": "ts",
        "summary": "summary",
        "node": "node",
        "id": "id",
        "stream": "stream",
        "capture": "capture",
        "dns_rcode": "dns_rcode",
        "grpc_status": "grpc_status",
        "tls": "tls",
        "request.size": "req_size",
        "response.size": "resp_size",
        **{
            f"{side}.{attr}": f"{side}_{attr}"
            for side in ("src", "dst")
            for attr in _ENDPOINT_ATTRS
        },
    }
)
"""The ColumnMap handed to `Query.sql`: canonical field name -> column."""

GROUPABLE: Final = frozenset(k for k in COLUMNS if k not in ("timestamp", "id", "elapsed_time"))
"""Fields `stats(group_by=...)` accepts (besides "")."""

SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(f"{name} {kind} NOT NULL" for name, kind in _COLUMN_TYPES)
    + ")",
    "CREATE INDEX IF NOT EXISTS ix_id ON entries(id)",
    "CREATE INDEX IF NOT EXISTS ix_ts ON entries(ts)",
    "CREATE INDEX IF NOT EXISTS ix_protocol ON entries(protocol)",
    "CREATE INDEX IF NOT EXISTS ix_status ON entries(status_code)",
    "CREATE INDEX IF NOT EXISTS ix_dst_ns ON entries(dst_namespace)",
    "CREATE INDEX IF NOT EXISTS ix_dst_svc ON entries(dst_service)",
    "CREATE INDEX IF NOT EXISTS ix_dst_pod ON entries(dst_pod)",
    "CREATE INDEX IF NOT EXISTS ix_src_pod ON entries(src_pod)",
    "CREATE INDEX IF NOT EXISTS ix_path ON entries(path)",
)

INSERT: Final = (
    f"INSERT INTO entries ({', '.join(COLUMN_NAMES)}) VALUES ({', '.join('?' * len(COLUMN_NAMES))})"
)

_UDP_PROTOCOLS: Final = frozenset(("udp", "dns"))


def is_error(entry: Entry) -> bool:
    """The error rule used by stats and the service map.

    gRPC: a grpc-status other than 0.  DNS: an rcode other than NOERROR.  Any protocol: an
    integer status >= 500 (HTTP, HTTP/2, WebSocket upgrades) or the status string "error"
    (Redis, PostgreSQL, Kafka, ...).  Entries without a response are not errors.
    """
    status = entry.status
    if status is None:
        return False
    protocol = entry.protocol
    if protocol == "grpc":
        return _grpc_status(status) != 0
    if protocol == "dns":
        return isinstance(status, str) and status not in ("", "NOERROR")
    if type(status) is int:
        return status >= 500
    return status == "error"


def transport_of(entry: Entry) -> str:
    """ "udp" or "tcp" (see the module docstring)."""
    if entry.protocol not in _UDP_PROTOCOLS:
        return "tcp"
    info = entry.request.info if entry.request is not None else None
    if info is not None and info.get("transport") == "tcp":
        return "tcp"
    return "udp"


def row_of(entry: Entry) -> tuple[Any, ...]:
    """The values of `INSERT` for one entry (its blob included)."""
    status = entry.status
    protocol = entry.protocol
    elapsed = entry.elapsed_us
    src, dst = entry.src, entry.dst
    request, response = entry.request, entry.response
    return (
        entry.id,
        protocol,
        entry.timestamp,
        0 if elapsed is None else elapsed,
        0 if elapsed is None else 1,
        entry.method,
        entry.path,
        status if type(status) is int else 0,
        "" if protocol != "dns" or status is None else str(status),
        _grpc_status(status) if protocol == "grpc" else 0,
        entry.summary,
        entry.node,
        entry.stream,
        entry.capture,
        1 if entry.tls else 0,
        1 if is_error(entry) else 0,
        transport_of(entry),
        src.ip,
        src.port,
        src.name,
        src.pod,
        src.namespace,
        src.service,
        src.node,
        dst.ip,
        dst.port,
        dst.name,
        dst.pod,
        dst.namespace,
        dst.service,
        dst.node,
        0 if request is None else request.size,
        0 if response is None else response.size,
        BLOB_ENCODER.encode(entry),
    )


def _grpc_status(status: int | str | None) -> int:
    if type(status) is int:
        return status
    if isinstance(status, str) and status.isascii() and status.isdigit() and len(status) < 19:
        return int(status)
    return 0  # longer digit strings would not fit a column; such statuses do not exist
