"""Renderers: JSON lines and arrays parse back; the table is one line per entry."""

from __future__ import annotations

import io

import msgspec

from pilotfish.model import Endpoint, Entry
from pilotfish.output import JsonArray, JsonLines, Table, summary_lines
from tests.imports import loaded, modules_after

EP1 = Endpoint(ip="10.0.0.1", port=40000)
EP2 = Endpoint(ip="10.0.0.2", port=80, pod="web-1", namespace="shop")


def entries(n: int) -> list[Entry]:
    return [
        Entry(
            id=f"n-{i}",
            protocol="http",
            timestamp=1700000000.0 + i,
            elapsed_us=1500 * i,
            src=EP1,
            dst=EP2,
            method="GET",
            path=f"/p/{i}",
            status=200 + i,
        )
        for i in range(n)
    ]


def test_jsonl_one_line_each() -> None:
    buf = io.BytesIO()
    r = JsonLines(buf)
    for e in entries(3):
        r.write(e)
    r.close()
    lines = buf.getvalue().splitlines()
    assert [msgspec.json.decode(x)["path"] for x in lines] == ["/p/0", "/p/1", "/p/2"]


def test_json_array_empty_and_full() -> None:
    buf = io.BytesIO()
    JsonArray(buf).close()
    assert msgspec.json.decode(buf.getvalue()) == []
    buf = io.BytesIO()
    r = JsonArray(buf)
    for e in entries(2):
        r.write(e)
    r.close()
    assert [d["id"] for d in msgspec.json.decode(buf.getvalue())] == ["n-0", "n-1"]


def test_table_lines() -> None:
    buf = io.StringIO()
    t = Table(buf, color=False, width=160)
    for e in entries(2):
        t.write(e)
    t.close()
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("TIME")
    assert "shop/web-1:80" in lines[1] and lines[1].endswith("GET /p/0") and " 200 " in lines[1]
    assert "1.5ms" in lines[2]
    assert len(lines) == 3


def test_summary_lines_totals_and_counters() -> None:
    lines = summary_lines(
        {
            "frames": 10,
            "bytes": 2500,
            "flows": {"flows_opened": 2, "gaps": 0},
            "entries": {"http": 3, "dns": 1},
            "decode": {"non_ip": 4},
            "emitted": 4,
        }
    )
    assert lines[0] == "10 packets, 2.5 KB, 2 flows -> 4 entries (dns 1, http 3)"
    assert lines[1] == "counters: decode.non_ip=4 flows.flows_opened=2"


def test_rich_is_loaded_by_the_table_only() -> None:
    make = "import io\nfrom pilotfish.output import renderer\nrenderer({!r}, io.BytesIO(), io.StringIO())"
    assert loaded(modules_after(make.format("jsonl")), "rich") == []
    assert loaded(modules_after(make.format("json")), "rich") == []
    assert "rich.console" in modules_after(make.format("table"))
