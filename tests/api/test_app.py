"""The API over a real store: every endpoint, bad input as 4xx JSON, the live stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from pilotfish.api.app import ApiError, create_app, parse_bucket
from pilotfish.api.backend import LocalBackend
from pilotfish.api.live import LiveFeed
from pilotfish.store.sqlite import SqliteStore
from pilotfish.worker import write_stats
from tests.store.entries import make


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    store = SqliteStore(tmp_path / "e.db")
    store.add(
        [
            make(
                i,
                status=500 if i % 10 == 0 else 200,
                path="/api/slow" if i % 10 == 0 else "/api/items",
            )
            for i in range(50)
        ]
    )
    store.add([make(100, protocol="dns", status="NXDOMAIN", path="x.shop.svc")])
    store.commit()
    stats = tmp_path / "stats.json"
    write_stats(
        stats,
        {
            "capture": {"received": 1234, "dropped": 5, "if_dropped": 1},
            "pipeline": {
                "bytes": 99,
                "entries": {"http": 50, "dns": 1},
                "dissect_errors": {"http": 2},
            },
            "open_flows": 7,
        },
    )
    yield LocalBackend(store, LiveFeed(max_queue=10), stats_path=stats)
    store.close()


@pytest.fixture
def client(backend: LocalBackend) -> Iterator[TestClient]:
    with TestClient(create_app(backend)) as c:
        yield c


def test_entries_newest_first_with_cursor_paging(client: TestClient) -> None:
    first = client.get("/api/entries", params={"limit": 20}).json()
    assert [e["id"] for e in first["entries"]][:2] == ["n-100", "n-49"]
    second = client.get("/api/entries", params={"limit": 20, "before": first["older"]}).json()
    ids = [e["id"] for e in first["entries"] + second["entries"]]
    assert len(ids) == len(set(ids)) == 40


def test_query_filters_and_errors_point_at_the_column(client: TestClient) -> None:
    r = client.get("/api/entries", params={"q": "http && status_code >= 500"})
    assert {e["path"] for e in r.json()["entries"]} == {"/api/slow"}
    assert len(r.json()["entries"]) == 5
    bad = client.get("/api/entries", params={"q": "http && stauts == 1"})
    assert bad.status_code == 400
    assert bad.json()["position"] == 8 and "stauts" in bad.json()["error"]
    assert client.get("/api/query/check", params={"q": "dns"}).json() == {"ok": True}


@pytest.mark.parametrize(
    "params", [{"limit": "lots"}, {"limit": "-5"}, {"before": "abc"}, {"q": "(" * 100}]
)
def test_bad_parameters_are_400_json(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/api/entries", params=params)
    assert r.status_code == 400 and "error" in r.json()


def test_huge_limit_is_clamped(client: TestClient) -> None:
    assert len(client.get("/api/entries", params={"limit": 10**9}).json()["entries"]) == 51


def test_one_entry_and_unknown_id(client: TestClient) -> None:
    assert client.get("/api/entries/n-3").json()["path"] == "/api/items"
    r = client.get("/api/entries/nope")
    assert r.status_code == 404 and r.json() == {"error": "no such entry"}
    assert client.get("/no/such/route").json()["error"]


def test_stats_and_servicemap(client: TestClient) -> None:
    buckets = client.get("/api/stats", params={"bucket": "1m", "q": "http"}).json()
    assert sum(b["count"] for b in buckets) == 50
    assert sum(b["errors"] for b in buckets) == 5
    assert client.get("/api/stats", params={"bucket": "soon"}).status_code == 400
    smap = client.get("/api/servicemap").json()
    assert any(e["count"] == 50 for e in smap["edges"])


def test_bucket_parsing() -> None:
    assert parse_bucket("60") == 60 and parse_bucket("10s") == 10 and parse_bucket("1m") == 60
    assert parse_bucket("500ms") == 0.5
    with pytest.raises(ApiError):
        parse_bucket("0")


def test_har_export_is_har_1_2(client: TestClient) -> None:
    doc = client.get("/api/export.har", params={"q": "status_code >= 500"}).json()
    log = doc["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "pilotfish"
    assert len(log["entries"]) == 5
    e = log["entries"][0]
    for key in ("startedDateTime", "time", "request", "response", "cache", "timings"):
        assert key in e
    assert e["request"]["method"] == "GET" and e["response"]["status"] == 500
    assert e["startedDateTime"].endswith("Z")


def test_metrics_parse_with_prometheus_parser(client: TestClient) -> None:
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    received = families["pilotfish_packets_received"].samples[0]
    assert received.value == 1234
    dropped = {
        s.labels["stage"]: s.value
        for s in families["pilotfish_packets_dropped"].samples
        if s.name.endswith("_total")
    }
    assert dropped == {"kernel": 5, "interface": 1}
    entries = {
        s.labels["protocol"]: s.value
        for s in families["pilotfish_entries"].samples
        if s.name.endswith("_total")
    }
    assert entries == {"http": 50, "dns": 1}
    assert families["pilotfish_live_streams"].samples[0].value == 7
    assert families["pilotfish_store_bytes"].samples[0].value > 0


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/readyz").status_code == 200
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/api/entries" in doc["paths"]
    assert len(client.get("/api/fields").json()) > 20


def test_live_stream_filters_server_side(client: TestClient, backend: LocalBackend) -> None:
    with client.websocket_connect("/api/stream?q=status_code%20%3E%3D%20500") as ws:
        assert ws.receive_json()["type"] == "hello"
        backend.feed.publish(make(200, status=200))
        backend.feed.publish(make(201, status=503))
        msg = ws.receive_json()
        assert msg["type"] == "entry" and msg["entry"]["id"] == "n-201"


def test_live_stream_rejects_a_bad_query(client: TestClient) -> None:
    with client.websocket_connect("/api/stream?q=http%20%26%26") as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and "position" in msg


def test_slow_client_gets_drops_counted_and_is_told(
    client: TestClient, backend: LocalBackend
) -> None:
    with client.websocket_connect("/api/stream") as ws:
        assert ws.receive_json()["type"] == "hello"
        (sub,) = backend.feed._subs
        for i in range(500):  # far more than the client's queue of 10 holds
            sub.offer(make(300 + i))
        assert sub.queue.qsize() == 10 and sub.dropped == 490
        kinds = [msgspec.json.decode(ws.receive_text())["type"] for _ in range(11)]
        assert kinds.count("entry") == 10 and "dropped" in kinds
    assert backend.feed.clients == 0 and backend.feed.dropped() == 490
