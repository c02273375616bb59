"""The table of query fields and functions: names, types, getters and help strings.

`FIELDS` maps every canonical field name to a `FieldSpec` (type, help text, getter over an
`Entry`); `ALIASES` maps alternative spellings to canonical names; `FUNCTIONS` lists every
function with its overloads and help.  The dashboard lists these for autocomplete
(`catalog()`), the checker types queries with them and the predicate reads entries with the
getters.

Missing values read as CEL defaults instead of errors, so filters never blow up on partial
entries: absent strings and headers are "", absent numbers 0 (`elapsed_time` of an entry
without a response, `status_code` of a non-HTTP status), absent lists empty.  Header lookups
try the exact key first and then a case-insensitive match (HTTP/1 keeps the wire's casing).
Protocol booleans are exact: `http` is HTTP/1 only (`http2`, `grpc`, `websocket` are
separate); `tls` is true for TLS-protocol entries and for entries flagged `tls`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from pilotfish.model import PROTOCOLS, Endpoint, Entry, Payload

# Types, as strings: scalar names, "list(string)", "map(string, string)" and "dyn" (checked
# at run time).
BOOL: Final = "bool"
INT: Final = "int"
DOUBLE: Final = "double"
STRING: Final = "string"
TIMESTAMP: Final = "timestamp"
DURATION: Final = "duration"
NULL: Final = "null"
DYN: Final = "dyn"
LIST_STRING: Final = "list(string)"
LIST_DYN: Final = "list(dyn)"
MAP_STRING: Final = "map(string, string)"

Getter = Callable[[Entry], Any]
_EMPTY_MAP: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field: canonical name, type, help text and how to read it from an Entry."""

    name: str
    type: str
    help: str
    getter: Getter


@dataclass(frozen=True, slots=True)
class Overload:
    """One signature of a function: receiver type (None for a global call), argument types,
    result type.  "list"/"map" match any list/map type."""

    receiver: str | None
    args: tuple[str, ...]
    result: str


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function with its overloads and help text."""

    name: str
    overloads: tuple[Overload, ...]
    help: str


# --- getters -------------------------------------------------------------------------------


def _protocol_is(name: str) -> Getter:
    def get(entry: Entry) -> bool:
        return entry.protocol == name

    return get


def _endpoint(side: str, attr: str) -> Getter:
    def get(entry: Entry) -> Any:
        endpoint: Endpoint = getattr(entry, side)
        return getattr(endpoint, attr)

    return get


def _payload(side: str, attr: str, default: Any) -> Getter:
    def get(entry: Entry) -> Any:
        payload: Payload | None = getattr(entry, side)
        return default if payload is None else getattr(payload, attr)

    return get


def _status_code(entry: Entry) -> int:
    status = entry.status
    return status if type(status) is int else 0


def _elapsed(entry: Entry) -> int:
    elapsed = entry.elapsed_us
    return 0 if elapsed is None else elapsed


def _tls(entry: Entry) -> bool:
    return entry.tls or entry.protocol == "tls"


def _records(payload: Payload | None, attr: str, keys: tuple[str, ...]) -> list[str]:
    records = None if payload is None else getattr(payload, attr)
    if not records:
        return []
    out: list[str] = []
    for record in records:
        if isinstance(record, dict):
            for key in keys:
                value = record.get(key)
                if value is not None:
                    out.append(str(value))
                    break
    return out


def _dns_questions(entry: Entry) -> list[str]:
    return _records(entry.request, "questions", ("name", "qname"))


def _dns_answers(entry: Entry) -> list[str]:
    return _records(entry.response, "answers", ("data", "rdata"))


def _dns_rcode(entry: Entry) -> str:
    status = entry.status
    return "" if entry.protocol != "dns" or status is None else str(status)


def _grpc_status(entry: Entry) -> int:
    status = entry.status
    if entry.protocol != "grpc":
        return 0
    if type(status) is int:
        return status
    if isinstance(status, str) and status.isascii() and status.isdigit():
        return int(status)
    return 0


def _attr(name: str) -> Getter:
    def get(entry: Entry) -> Any:
        return getattr(entry, name)

    return get


def _headers(side: str) -> Getter:
    return _payload(side, "headers", _EMPTY_MAP)


# --- the tables ----------------------------------------------------------------------------


def _build_fields() -> dict[str, FieldSpec]:
    table: list[FieldSpec] = [
        FieldSpec(p, BOOL, f"true for {p} entries", _protocol_is(p))
        for p in PROTOCOLS
        if p != "tls"
    ]
    table += [
        FieldSpec("tls", BOOL, "true for TLS traffic (TLS entries or entries flagged tls)", _tls),
        FieldSpec(
            "protocol", STRING, 'protocol name: "http", "dns", "grpc", ...', _attr("protocol")
        ),
        FieldSpec(
            "method",
            STRING,
            "HTTP method, gRPC method, DNS qtype, Redis/SQL command",
            _attr("method"),
        ),
        FieldSpec(
            "path", STRING, "HTTP target, gRPC method, DNS qname, first key or SNI", _attr("path")
        ),
        FieldSpec(
            "status_code",
            INT,
            "numeric status (HTTP status, grpc-status), 0 when absent",
            _status_code,
        ),
        FieldSpec(
            "status", DYN, "raw status: int, string (DNS rcode, ok/error) or null", _attr("status")
        ),
        FieldSpec(
            "elapsed_time",
            INT,
            "response first byte - request first byte, in microseconds (0 if none)",
            _elapsed,
        ),
        FieldSpec("timestamp", TIMESTAMP, "time of the request's first packet", _attr("timestamp")),
        FieldSpec("summary", STRING, "one-line summary, e.g. GET /api -> 200", _attr("summary")),
        FieldSpec("node", STRING, "node that captured the entry", _attr("node")),
        FieldSpec("id", STRING, "entry id (<node>-<seq>)", _attr("id")),
        FieldSpec("stream", STRING, "flow id, for PCAP export", _attr("stream")),
        FieldSpec("capture", STRING, "capture backend that saw the entry", _attr("capture")),
        FieldSpec(
            "flags",
            LIST_STRING,
            'markers such as "gap", "no-response", "truncated"',
            _attr("flags"),
        ),
        FieldSpec("dns_questions", LIST_STRING, "DNS question names", _dns_questions),
        FieldSpec("dns_answers", LIST_STRING, "DNS answer data", _dns_answers),
        FieldSpec(
            "dns_rcode",
            STRING,
            'DNS response code name, e.g. "NXDOMAIN" ("" if not DNS)',
            _dns_rcode,
        ),
        FieldSpec("grpc_status", INT, "gRPC status code (0 when absent or not gRPC)", _grpc_status),
    ]
    for side, word in (("src", "source"), ("dst", "destination")):
        table += [
            FieldSpec(f"{side}.ip", STRING, f"{word} IP address", _endpoint(side, "ip")),
            FieldSpec(f"{side}.port", INT, f"{word} port", _endpoint(side, "port")),
        ]
        table += [
            FieldSpec(
                f"{side}.{attr}",
                STRING,
                f"{word} {attr} (Kubernetes identity, '' if unknown)",
                _endpoint(side, attr),
            )
            for attr in ("name", "pod", "namespace", "service", "node")
        ]
    for side in ("request", "response"):
        table += [
            FieldSpec(
                f"{side}.headers",
                MAP_STRING,
                f'{side} headers: {side}.headers["name"] ("" if absent)',
                _headers(side),
            ),
            FieldSpec(
                f"{side}.body",
                STRING,
                f"decoded {side} body (maybe truncated)",
                _payload(side, "body", ""),
            ),
            FieldSpec(
                f"{side}.size",
                INT,
                f"{side} size on the wire in bytes (0 if none)",
                _payload(side, "size", 0),
            ),
        ]
    return {spec.name: spec for spec in table}


FIELDS: Final[Mapping[str, FieldSpec]] = MappingProxyType(_build_fields())
ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {"url": "path", "request_size": "request.size", "response_size": "response.size"}
)


def _overloads(*items: tuple[str | None, tuple[str, ...], str]) -> tuple[Overload, ...]:
    return tuple(Overload(r, a, t) for r, a, t in items)


_STRING_TEST = _overloads((STRING, (STRING,), BOOL))
FUNCTIONS: Final[Mapping[str, FunctionSpec]] = MappingProxyType(
    {
        f.name: f
        for f in (
            FunctionSpec("startsWith", _STRING_TEST, "s.startsWith(prefix): s begins with prefix"),
            FunctionSpec("endsWith", _STRING_TEST, "s.endsWith(suffix): s ends with suffix"),
            FunctionSpec("contains", _STRING_TEST, "s.contains(part): part occurs in s"),
            FunctionSpec(
                "matches",
                _overloads((STRING, (STRING,), BOOL), (None, (STRING, STRING), BOOL)),
                "s.matches(regex): the regular expression matches somewhere in s",
            ),
            FunctionSpec(
                "size",
                _overloads(
                    *((None, (t,), INT) for t in (STRING, "list", "map")),
                    *((t, (), INT) for t in (STRING, "list", "map")),
                ),
                "size(x) or x.size(): characters of a string, items of a list or map",
            ),
            FunctionSpec(
                "lowerAscii",
                _overloads((STRING, (), STRING)),
                "s.lowerAscii(): ASCII letters lowered",
            ),
            FunctionSpec(
                "upperAscii",
                _overloads((STRING, (), STRING)),
                "s.upperAscii(): ASCII letters uppercased",
            ),
            FunctionSpec(
                "int",
                _overloads(*((None, (t,), INT) for t in (INT, DOUBLE, STRING, TIMESTAMP))),
                "int(x): integer from a number, a decimal string or a timestamp (epoch seconds)",
            ),
            FunctionSpec(
                "double",
                _overloads(*((None, (t,), DOUBLE) for t in (INT, DOUBLE, STRING))),
                "double(x): floating-point number from a number or a string",
            ),
            FunctionSpec(
                "string",
                _overloads(*((None, (t,), STRING) for t in (INT, DOUBLE, STRING, BOOL))),
                "string(x): text form of a value",
            ),
            FunctionSpec(
                "timestamp",
                _overloads((None, (STRING,), TIMESTAMP)),
                'timestamp("2026-01-01T00:00:00Z"): an RFC 3339 time',
            ),
            FunctionSpec(
                "duration",
                _overloads((None, (STRING,), DURATION)),
                'duration("5m"): a span such as "1h30m", "250ms", "1.5s"',
            ),
            FunctionSpec(
                "now",
                _overloads((None, (), TIMESTAMP)),
                "now(): the current time (from the query's clock)",
            ),
        )
    }
)


def catalog() -> list[dict[str, str]]:
    """Every field, alias and function with its type and help, for autocomplete."""
    items = [
        {"kind": "field", "name": s.name, "type": s.type, "help": s.help} for s in FIELDS.values()
    ]
    items += [
        {"kind": "field", "name": a, "type": FIELDS[c].type, "help": f"same as {c}"}
        for a, c in ALIASES.items()
    ]
    items += [
        {"kind": "function", "name": f.name, "type": "", "help": f.help} for f in FUNCTIONS.values()
    ]
    return items
