"""The predicate: every field read from hand-made entries, CEL error semantics, and a
differential test against the real CEL implementation (celpy)."""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from celpy import celtypes
from celpy.evaluation import CELEvalError
from hypothesis import given, settings

from pilotfish.model import Endpoint, Entry, Payload
from pilotfish.query import QueryError, compile_query
from pilotfish.query.fields import FIELDS

from .strategies import INT_FIELDS, STRING_FIELDS, combine, entries, shared_atoms

NOW = 1767225900.0  # 2026-01-01T00:05:00Z


def _match(text: str, entry: Entry) -> bool:
    return compile_query(text, clock=lambda: NOW).match(entry)


HTTP = Entry(
    id="node-a-7",
    protocol="http",
    timestamp=1767225600.25,
    elapsed_us=6_000_000,
    src=Endpoint(
        ip="10.0.0.1",
        port=40000,
        name="cart",
        pod="cart-7f",
        namespace="shop",
        service="cart",
        node="n1",
    ),
    dst=Endpoint(
        ip="10.0.0.2",
        port=8080,
        name="api",
        pod="api-1",
        namespace="shop",
        service="api",
        node="n2",
    ),
    method="GET",
    path="/api/v2/items?x=1",
    status=503,
    summary="GET /api/v2/items?x=1 -> 503",
    request=Payload(
        size=120, headers={"Content-Type": "application/json", "host": "api"}, body='{"q":1}'
    ),
    response=Payload(size=3400, headers={"content-type": "text/html"}, body="<h1>down</h1>"),
    capture="afpacket",
    stream="s-9",
    node="n1",
    flags=["gap"],
)
DNS = Entry(
    id="n-2",
    protocol="dns",
    timestamp=1767225000.0,
    elapsed_us=None,
    src=Endpoint(ip="10.0.0.3", port=5353),
    dst=Endpoint(ip="10.0.0.10", port=53),
    method="A",
    path="example.com",
    status="NXDOMAIN",
    request=Payload(questions=[{"name": "example.com", "type": "A"}]),
    response=Payload(answers=[{"data": "93.184.216.34"}, {"rdata": "1.2.3.4"}, {"x": 1}]),
)
GRPC = Entry(
    id="n-3",
    protocol="grpc",
    timestamp=1.0,
    elapsed_us=5,
    src=Endpoint(ip="::1", port=1),
    dst=Endpoint(ip="::1", port=2),
    status="14",
    tls=True,
)


@pytest.mark.parametrize(
    ("text", "entry", "expected"),
    [
        ('http && method == "GET" && status_code >= 400', HTTP, True),
        ('dns && "example.com" in dns_questions', DNS, True),
        ('dns && "example.org" in dns_questions', DNS, False),
        ('"1.2.3.4" in dns_answers && size(dns_answers) == 2', DNS, True),
        ('dns_rcode == "NXDOMAIN"', DNS, True),
        ('dns_rcode == ""', HTTP, True),
        ("grpc && grpc_status != 0", GRPC, True),
        ("grpc_status == 14 && status_code == 0", GRPC, True),
        ("grpc_status == 0", HTTP, True),
        ('src.pod.startsWith("cart-") && elapsed_time > 5000000', HTTP, True),
        ("elapsed_time == 0", DNS, True),
        ('timestamp > now() - duration("5m")', HTTP, True),
        ('timestamp > now() - duration("5m")', DNS, False),
        ("!dns", HTTP, True),
        ("!dns", DNS, False),
        ('(http || grpc) && dst.namespace == "shop"', HTTP, True),
        ('request.headers["content-type"].contains("json")', HTTP, True),
        ('request.headers["Content-type"] == "application/json"', HTTP, True),
        ('request.headers.host == "api"', HTTP, True),
        ('request.headers["accept"].contains("json")', HTTP, False),
        ('request.headers["accept"] == ""', DNS, True),
        ('"content-type" in response.headers && !("accept" in response.headers)', HTTP, True),
        ('path.matches("^/api/v[0-9]+/")', HTTP, True),
        ("size(path) > 10 && path.size() == 17", HTTP, True),
        ('method in ["GET", "HEAD"]', HTTP, True),
        ('method in ["POST"]', HTTP, False),
        ('src.ip == "10.0.0.1" && src.port == 40000', HTTP, True),
        ('protocol == "redis"', HTTP, False),
        ('timestamp > timestamp("2026-01-01T00:00:00Z")', HTTP, True),
        ('timestamp - timestamp("2026-01-01T00:00:00Z") == duration("250ms")', HTTP, True),
        ('url == path && url.endsWith("x=1")', HTTP, True),
        ("status == 503 && status_code == 503", HTTP, True),
        ('status == "NXDOMAIN" && status != 3', DNS, True),
        (
            'summary.contains("-> 503") && id == "node-a-7" && stream == "s-9" && node == "n1"',
            HTTP,
            True,
        ),
        ('capture == "afpacket"', HTTP, True),
        ('"gap" in flags && size(flags) == 1', HTTP, True),
        ("flags == []", DNS, True),
        ("tls && !http", GRPC, True),
        ("tls", HTTP, False),
        (
            'src.name == "cart" && src.namespace == "shop" && src.service == "cart" && src.node == "n1"',
            HTTP,
            True,
        ),
        (
            'dst.name == "api" && dst.pod == "api-1" && dst.service == "api" && dst.node == "n2"',
            HTTP,
            True,
        ),
        ('dst.ip == "10.0.0.2" && dst.port == 8080', HTTP, True),
        ('request.body.contains("q") && response.body.startsWith("<h1>")', HTTP, True),
        (
            "request.size == 120 && response.size == 3400 && request_size + response_size == 3520",
            HTTP,
            True,
        ),
        ('request.body == "" && request.size == 0 && response.size == 0', GRPC, True),
        ('method.lowerAscii() == "get" && "a".upperAscii() == "A"', HTTP, True),
        ('int("12") + 1 == 13 && double("1.5") == 1.5 && string(7) == "7"', HTTP, True),
        ("int(timestamp) == 1767225600", HTTP, True),
        ("elapsed_time > 5.5e6", HTTP, True),
        ('matches(method, "^G")', HTTP, True),
        ("[1, 2] + [3] == [1, 2, 3]", HTTP, True),
        ("-elapsed_time < 0 && -(-2) == 2", HTTP, True),
        ("7 / -2 == -3 && -7 % 3 == -1", HTTP, True),
        ("1.0 / 0.0 > 1e308", HTTP, True),
    ],
)
def test_examples(text: str, entry: Entry, expected: bool) -> None:
    assert _match(text, entry) is expected


def test_every_field_reads_without_error() -> None:
    for name, spec in FIELDS.items():
        for entry in (HTTP, DNS, GRPC):
            value = spec.getter(entry)
            assert value is not None or name == "status", name


def test_protocol_booleans_are_exact() -> None:
    h2 = Entry(id="x", protocol="http2", timestamp=0, elapsed_us=None, src=HTTP.src, dst=HTTP.dst)
    assert not _match("http", h2)
    assert _match("http2 && !grpc", h2)


def test_empty_query_matches_everything() -> None:
    assert _match("", DNS) and _match("   ", HTTP)


def test_clock_is_injected() -> None:
    ticks = [1767225600.0]
    query = compile_query("timestamp <= now()", clock=lambda: ticks[0])
    assert query.match(HTTP) is False
    ticks[0] = 1767225601.0
    assert query.match(HTTP) is True


# --- run-time errors follow CEL ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status >= 400", False),  # dyn: "NXDOMAIN" >= 400 is an error -> no match
        ("status >= 400 || dns", True),  # error || true == true
        ("dns || status >= 400", True),
        ("status >= 400 && false", False),
        ("!(status >= 400)", False),  # errors are not negated into matches
        ("elapsed_time / 0 == 1 || true", True),
        ("src.port * 9223372036854775807 > 0", False),  # overflow
        ("flags[0] == 'gap'", False),  # index out of range
        ('path.matches(method + "(")', False),  # bad run-time regex
        ("status", False),  # dyn used as a condition is not a bool
    ],
)
def test_runtime_errors(text: str, expected: bool) -> None:
    assert _match(text, DNS) is expected


def test_compile_time_constant_errors() -> None:
    with pytest.raises(QueryError) as err:
        compile_query('timestamp > now() - duration("5 minutes")')
    assert err.value.position == 20
    with pytest.raises(QueryError, match="division by zero"):
        compile_query("elapsed_time > 1 / 0")
    with pytest.raises(QueryError, match="no time zone"):
        compile_query('timestamp > timestamp("2026-01-01T00:00:00")')


# --- differential test against celpy -----------------------------------------------------


def _cel_value(value: Any) -> Any:
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    raise TypeError(value)


def _activation(entry: Entry) -> dict[str, Any]:
    flat = {name: _cel_value(FIELDS[name].getter(entry)) for name in (*STRING_FIELDS, *INT_FIELDS)}
    flat.update({p: _cel_value(FIELDS[p].getter(entry)) for p in ("http", "dns", "grpc", "tcp")})
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        head, _, tail = name.partition(".")
        if tail:
            nested.setdefault(head, {})[celtypes.StringType(tail)] = value
        else:
            nested[head] = value
    return {k: celtypes.MapType(v) if isinstance(v, dict) else v for k, v in nested.items()}


_CEL = celpy.Environment()


def _celpy_match(text: str, entry: Entry) -> bool:
    program = _CEL.program(_CEL.compile(text))
    try:
        result = program.evaluate(_activation(entry))
    except CELEvalError:
        return False
    return isinstance(result, celtypes.BoolType) and bool(result)


@settings(max_examples=200)
@given(entry=entries(), text=combine(shared_atoms()))
def test_agrees_with_celpy(entry: Entry, text: str) -> None:
    assert compile_query(text).match(entry) is _celpy_match(text, entry), text
