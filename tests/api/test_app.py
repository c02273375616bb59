"""The API over a real store and spool: every endpoint, bad input as 4xx JSON, 500s survived."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from pilotfish.api.app import create_app
from pilotfish.api.backend import LocalBackend
from tests.api.conftest import HTTP_ENTRIES
from tests.store.entries import make


@pytest.fixture
def client(backend: LocalBackend) -> Iterator[TestClient]:
    with TestClient(create_app(backend, static_dir=None)) as c:
        yield c


def test_entries_newest_first_with_cursor_paging(client: TestClient) -> None:
    first = client.get("/api/entries", params={"limit": 20}).json()
    assert [e["id"] for e in first["entries"]][:2] == ["n-100", "n-49"]
    second = client.get("/api/entries", params={"limit": 20, "before": first["older"]}).json()
    ids = [e["id"] for e in first["entries"] + second["entries"]]
    assert len(ids) == len(set(ids)) == 40
    newer = client.get("/api/entries", params={"after": first["newer"]}).json()
    assert newer["entries"] == []


def test_query_filters_and_errors_point_at_the_column(client: TestClient) -> None:
    r = client.get("/api/entries", params={"q": "http && status_code >= 500"})
    assert {e["path"] for e in r.json()["entries"]} == {"/api/slow"}
    assert len(r.json()["entries"]) == 5
    bad = client.get("/api/entries", params={"q": "http && stauts == 1"})
    assert bad.status_code == 400
    assert bad.json()["position"] == 8 and "stauts" in bad.json()["error"]
    assert client.get("/api/query/check", params={"q": "dns"}).json() == {"ok": True}
    check = client.get("/api/query/check", params={"q": "dns &&"})
    assert check.status_code == 400 and set(check.json()) == {"error", "position"}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/entries", {"limit": "lots"}),
        ("/api/entries", {"limit": "1.5"}),
        ("/api/entries", {"before": "abc"}),
        ("/api/entries", {"after": "9" * 40}),
        ("/api/entries", {"q": "(" * 100}),
        ("/api/entries", {"q": "x" * 10_000}),
        ("/api/entries", {"lmit": "5"}),
        ("/api/stats", {"bucket": "soon"}),
        ("/api/stats", {"group_by": "password"}),
        ("/api/servicemap", {"q": "status_code >= "}),
        ("/api/export.pcap", {"q": "nope"}),
        ("/api/export.har", {"limit": "-x"}),
        ("/api/fields", {"extra": "1"}),
    ],
)
def test_bad_parameters_are_400_json(client: TestClient, path: str, params: dict[str, str]) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"]


def test_limits_are_clamped(client: TestClient) -> None:
    assert len(client.get("/api/entries", params={"limit": 10**9}).json()["entries"]) == 51
    assert len(client.get("/api/entries", params={"limit": -5}).json()["entries"]) == 1


def test_one_entry_unknown_ids_routes_and_methods(client: TestClient) -> None:
    assert client.get("/api/entries/n-3").json()["path"] == "/api/items"
    r = client.get("/api/entries/nope")
    assert r.status_code == 404 and r.json() == {"error": "no such entry", "id": "nope"}
    assert client.get("/api/entries/" + "x" * 1000).status_code == 404
    assert client.get("/no/such/route").json()["error"]
    posted = client.post("/api/entries", content=b"{not json")
    assert posted.status_code == 405 and posted.json()["error"]


def test_stats_and_servicemap(client: TestClient) -> None:
    buckets = client.get("/api/stats", params={"bucket": "1m", "q": "http"}).json()
    assert sum(b["count"] for b in buckets) == HTTP_ENTRIES
    assert sum(b["errors"] for b in buckets) == 5
    grouped = client.get("/api/stats", params={"bucket": "1h", "group_by": "protocol"}).json()
    assert {b["group"]: b["count"] for b in grouped} == {"http": 50, "dns": 1}
    smap = client.get("/api/servicemap").json()
    assert any(e["count"] == HTTP_ENTRIES for e in smap["edges"])
    only_dns = client.get("/api/servicemap", params={"q": "dns"}).json()
    assert [e["protocol"] for e in only_dns["edges"]] == ["dns"]
    detailed = client.get("/api/stats", params={"bucket": "1h", "latency": "1"}).json()
    assert sum(c for b in detailed for _, c in b["latency"]) == HTTP_ENTRIES + 1
    assert all(b["latency"] is None for b in grouped)
    edges = client.get("/api/servicemap", params={"latency": "true"}).json()["edges"]
    assert all(e["latency"] for e in edges)
    assert client.get("/api/stats", params={"latency": "maybe"}).status_code == 400


def test_har_export_is_har_1_2_oldest_first(client: TestClient) -> None:
    from tests.api.test_har import valid

    doc = client.get("/api/export.har", params={"q": "status_code >= 500"}).json()
    assert valid(doc)
    entries = doc["log"]["entries"]
    assert [e["comment"] for e in entries] == ["n-0", "n-10", "n-20", "n-30", "n-40"]
    assert entries[0]["response"]["status"] == 500
    everything = client.get("/api/export.har").json()["log"]["entries"]
    assert len(everything) == HTTP_ENTRIES  # the DNS entry is not HTTP
    assert len(client.get("/api/export.har", params={"limit": 3}).json()["log"]["entries"]) == 3


def _tshark_count(data: bytes, tmp_path: Path) -> int:
    path = tmp_path / "x.pcap"
    path.write_bytes(data)
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "tcp.srcport"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return len(out.stdout.split())


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_pcap_export_is_read_back_by_tshark(client: TestClient, tmp_path: Path) -> None:
    r = client.get("/api/export.pcap", params={"q": "status_code >= 500"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.tcpdump.pcap"
    assert r.headers["content-disposition"].startswith("attachment")
    assert _tshark_count(r.content, tmp_path) == 10  # 5 flows, request + response each
    everything = client.get("/api/export.pcap").content
    assert _tshark_count(everything, tmp_path) == 2 * HTTP_ENTRIES
    nothing = client.get("/api/export.pcap", params={"q": "dns"}).content
    assert len(nothing) == 24 and _tshark_count(nothing, tmp_path) == 0


def test_metrics_parse_with_prometheus_parser(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}

    def totals(name: str, label: str) -> dict[str, float]:
        return {
            s.labels[label]: s.value for s in families[name].samples if s.name.endswith("_total")
        }

    assert families["pilotfish_packets_received"].samples[0].value == 1234
    # the stages add up to the capture's dropped (5, of which 2 a full ring) and if_dropped
    assert totals("pilotfish_packets_dropped", "stage") == {"kernel": 3, "ring": 2, "interface": 1}
    assert totals("pilotfish_entries", "protocol") == {"http": 50, "dns": 1}
    assert totals("pilotfish_dropped_streams", "protocol") == {"http": 3, "redis": 4}
    assert families["pilotfish_reassembled_bytes"].samples[0].value == 4096
    assert families["pilotfish_live_streams"].samples[0].value == 7
    assert families["pilotfish_store_bytes"].samples[0].value > 0
    assert families["pilotfish_websocket_clients"].samples[0].value == 0
    assert totals("pilotfish_dropped", "what")["reassembly_gaps"] == 3


def test_health_index_fields_workers_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"ok": True}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/api/entries" in doc["paths"]
    assert set(client.get("/").json()["paths"]) == set(doc["paths"])
    fields = client.get("/api/fields").json()
    assert {"kind", "name"} <= set(fields[0]) and len(fields) > 20
    assert client.get("/api/workers").json()[0]["node"] == "n"


class _Broken(LocalBackend):
    """A backend whose reads fail and that says it is not ready."""

    async def entries(self, *args: Any) -> Any:
        raise RuntimeError("disk on fire")

    async def health(self) -> dict[str, Any]:
        return {"ready": False, "why": "warming up"}


def test_handler_exceptions_are_500_json_and_the_server_goes_on(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _Broken(backend.store, backend.spool, backend.feed)
    with TestClient(create_app(broken, static_dir=None), raise_server_exceptions=False) as c:
        r = c.get("/api/entries")
        assert r.status_code == 500 and r.json() == {"error": "internal error"}
        assert "disk on fire" in caplog.text
        assert c.get("/api/entries/n-1").status_code == 200
        not_ready = c.get("/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["why"] == "warming up"
        assert c.get("/healthz").status_code == 200


def test_static_dashboard_is_served_when_built(backend: LocalBackend, tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<h1>pilotfish</h1>")
    with TestClient(create_app(backend, static_dir=static)) as c:
        assert c.get("/").text == "<h1>pilotfish</h1>"
        assert c.get("/api/entries/n-1").json()["id"] == "n-1"


def test_live_stream_filters_server_side(client: TestClient, backend: LocalBackend) -> None:
    with client.websocket_connect("/api/stream?q=status_code%20%3E%3D%20500") as ws:
        assert ws.receive_json() == {"type": "hello", "query": "status_code >= 500"}
        backend.feed.publish(make(200, status=200))
        backend.feed.publish(make(201, status=503))
        msg = ws.receive_json()
        assert msg["type"] == "entries" and msg["count"] == 1
        assert [e["id"] for e in msg["entries"]] == ["n-201"]
        assert msgspec.convert(msg["entries"][0], type=type(make(1))) == make(201, status=503)


def test_live_stream_rejects_a_bad_query(client: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect("/api/stream?q=http%20%26%26") as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["position"] == 7
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 1008


def test_slow_client_gets_drops_counted_and_is_told(
    client: TestClient, backend: LocalBackend
) -> None:
    with client.websocket_connect("/api/stream") as ws:
        assert ws.receive_json()["type"] == "hello"
        (sub,) = backend.feed._subs
        for i in range(500):  # far more than the client's queue of 10 holds
            sub.offer(make(300 + i))
        assert sub.pending == 10 and sub.dropped == 490
        got = dropped = 0
        while got < 10 or not dropped:
            msg = ws.receive_json()
            if msg["type"] == "entries":
                got += msg["count"]
            else:
                assert msg == {"type": "dropped", "count": 490, "unfiltered": 0}
                dropped += 1
        assert got == 10 and dropped == 1
    assert backend.feed.clients == 0 and backend.feed.dropped() == 490
