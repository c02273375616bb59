"""The hub in front of two real workers: merged order, paging across workers, entry by id,
stats/service map/PCAP equal to one store holding everything, live streams merged, dead and
slow workers reported while the other still answers, bad input refused."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.sync.client import connect

from pilotfish.api.app import create_app
from pilotfish.api.params import ApiError, parse_bucket
from pilotfish.hub.app import NOTICE_HEADER, hub_app
from pilotfish.hub.backend import FederatedBackend, bucket_param
from pilotfish.store.sqlite import SqliteStore
from tests.api.served import served
from tests.hub.conftest import Cluster, local_backend, merged_order, wait_for
from tests.store.entries import T0, make


def page_through(c: Cluster, limit: int, q: str = "") -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        params: dict[str, object] = {"limit": limit, "q": q}
        if cursor is not None:
            params["before"] = cursor
        page = c.get("/api/entries", **params).json()
        ids += [e["id"] for e in page["entries"]]
        cursor = page["older"]
        if cursor is None:
            return ids
    raise AssertionError("paging did not end")


def test_entries_merge_newest_first_across_workers(cluster: Cluster) -> None:
    page = cluster.get("/api/entries", limit=1000).json()
    assert [e["id"] for e in page["entries"]] == merged_order(cluster.entries)
    assert page["older"] is None and page["newer"].startswith("h.")


@pytest.mark.parametrize(
    ("limit", "q"),
    [
        (1, "status_code >= 500"),
        (1, "dns"),
        (2, 'path.matches("[13]$")'),
        (3, ""),
        (7, ""),
        (7, 'path.matches("[13]$")'),
        (40, ""),
        (40, "status_code >= 500"),
    ],
)
def test_paging_across_workers_has_no_duplicates_or_gaps(
    cluster: Cluster, limit: int, q: str
) -> None:
    everything = cluster.get("/api/entries", limit=1000, q=q).json()["entries"]
    expected = [e["id"] for e in everything]
    assert expected and page_through(cluster, limit, q) == expected


def test_newer_pages_bring_exactly_what_arrived(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    first = cluster.get("/api/entries", limit=5).json()
    arrived = []
    for w, start in (("a", 200), ("b", 300)):
        writer = SqliteStore(cluster.paths[w] / "e.db")
        batch = [msgspec.structs.replace(make(start + k), id=f"{w}-new{k}") for k in range(7)]
        writer.add(batch)
        writer.close()
        arrived += [e.id for e in batch]
    seen: list[str] = []
    cursor = first["newer"]
    for _ in range(20):
        page = cluster.get("/api/entries", limit=3, after=cursor).json()
        seen += [e["id"] for e in reversed(page["entries"])]  # pages are newest first
        cursor = page["newer"]
        if not page["entries"] and len(seen) >= len(arrived):
            break
    assert sorted(seen) == sorted(arrived) and len(seen) == len(set(seen))
    assert seen == [f"a-new{k}" for k in range(7)] + [f"b-new{k}" for k in range(7)]


def test_entry_by_id_from_whichever_worker_holds_it(cluster: Cluster) -> None:
    for entry_id in ("a-0", "b-3", "b-90"):
        r = cluster.get(f"/api/entries/{entry_id}")
        assert r.status_code == 200 and r.json()["id"] == entry_id
    missing = cluster.get("/api/entries/c-1")
    assert missing.status_code == 404 and missing.json()["error"] == "no such entry"


@pytest.mark.parametrize("q", ["", "http", "status_code >= 500", 'path.endsWith("1")'])
@pytest.mark.parametrize(
    ("bucket", "group_by"), [("10s", ""), ("1m", "protocol"), ("1h", "src.pod")]
)
def test_stats_equal_one_store_holding_everything(
    cluster: Cluster, q: str, bucket: str, group_by: str
) -> None:
    got = cluster.get("/api/stats", q=q, bucket=bucket, group_by=group_by).json()
    want = cluster.oracle_json(lambda o: o.stats(q, parse_bucket(bucket), group_by))
    assert got == want and sum(b["count"] for b in got) > 0


@pytest.mark.parametrize("q", ["", "http", "status_code >= 500"])
def test_servicemap_equals_one_store_holding_everything(cluster: Cluster, q: str) -> None:
    got = cluster.get("/api/servicemap", q=q).json()
    assert got == cluster.oracle_json(lambda o: o.servicemap(q)) and got["edges"]
    with_latency = cluster.get("/api/servicemap", q=q, latency="1").json()
    assert with_latency == cluster.oracle_json(lambda o: o.servicemap(q, True))


@given(
    st.from_regex(r"[1-9][0-9]{0,4}(\.[0-9]{1,3})?(ms|s|m|h)?", fullmatch=True).filter(
        lambda t: 0.001 <= _parsed(t) <= 86_400
    )
)
def test_bucket_widths_reach_workers_as_the_same_float(text: str) -> None:
    width = parse_bucket(text)
    assert parse_bucket(bucket_param(width)) == width


def _parsed(text: str) -> float:
    try:
        return parse_bucket(text)
    except ApiError:
        return 0.0


def _capinfos_count(path: Path) -> int:
    out = subprocess.run(
        ["capinfos", "-M", "-c", str(path)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return int(out.strip().splitlines()[-1].split()[-1])


def test_pcap_export_is_the_union_in_time_order(cluster: Cluster, tmp_path: Path) -> None:
    for q in ("", "status_code >= 500"):
        r = cluster.get("/api/export.pcap", q=q)
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.tcpdump.pcap"

        async def oracle_export(q: str = q) -> bytes:
            return b"".join([c async for c in cluster.oracle.export_pcap(q)])

        import asyncio

        want = asyncio.run(oracle_export())
        assert r.content == want
        path = tmp_path / "hub.pcap"
        path.write_bytes(r.content)
        count = _capinfos_count(path)
        assert count > 0 and count % 2 == 0  # request and response of each flow
        fields = subprocess.run(
            ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        stamps = [float(x) for x in fields]
        assert len(stamps) == count and stamps == sorted(stamps)


def test_har_export_holds_both_workers_http_entries(cluster: Cluster) -> None:
    har = cluster.get("/api/export.har").json()
    http = [e for w in "ab" for e in cluster.entries[w] if e.protocol == "http"]
    assert len(har["log"]["entries"]) == len(http)
    started = [e["startedDateTime"] for e in har["log"]["entries"]]
    assert started == sorted(started)  # oldest first, across both workers


def test_live_streams_of_both_workers_merge(cluster: Cluster) -> None:
    with connect(cluster.hub.replace("http", "ws") + "/api/stream?q=http", open_timeout=10) as ws:
        assert json.loads(ws.recv(10))["type"] == "hello"
        wait_for(lambda: all(b.feed.clients == 1 for b in cluster.backends.values()), "fan-in")
        sent = []
        for k in range(30):
            w = "a" if k % 3 else "b"
            e = msgspec.structs.replace(make(500 + k), id=f"{w}-live{k}")
            cluster.backends[w].feed.publish(e)
            sent.append(e.id)
        dns = msgspec.structs.replace(make(600, protocol="dns", status="NOERROR"), id="a-dns")
        cluster.backends["a"].feed.publish(dns)
        got: list[str] = []
        while len(got) < len(sent):
            message = json.loads(ws.recv(10))
            if message["type"] == "entries":
                got.extend(e["id"] for e in message["entries"])
        assert sorted(got) == sorted(sent)  # the DNS entry was filtered out on the worker
        for w in "ab":  # each worker's own order is kept
            mine = [i for i in got if i.startswith(w)]
            assert mine == [i for i in sent if i.startswith(w)]
    wait_for(lambda: cluster.hub_backend.feed.clients == 0, "hub client gone")
    wait_for(lambda: all(b.feed.clients == 0 for b in cluster.backends.values()), "pumps gone")


def test_hub_clients_with_the_same_query_share_one_stream_per_worker(cluster: Cluster) -> None:
    ws_url = cluster.hub.replace("http", "ws") + "/api/stream"
    with (
        connect(f"{ws_url}?q=http", open_timeout=10) as one,
        connect(f"{ws_url}?q=http", open_timeout=10) as two,
        connect(f"{ws_url}?q=dns", open_timeout=10) as three,
    ):
        for ws in (one, two, three):
            assert json.loads(ws.recv(10))["type"] == "hello"
        wait_for(lambda: cluster.hub_backend.feed.clients == 3, "three hub clients")
        wait_for(
            lambda: all(b.feed.clients == 2 for b in cluster.backends.values()),
            "one worker stream per distinct query",
        )
        entry = msgspec.structs.replace(make(700), id="a-shared")
        cluster.backends["a"].feed.publish(entry)
        for ws in (one, two):
            assert json.loads(ws.recv(10))["entries"][0]["id"] == "a-shared"
    wait_for(lambda: all(b.feed.clients == 0 for b in cluster.backends.values()), "streams gone")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_dead_worker_is_reported_and_retried_while_the_other_answers(
    cluster: Cluster, tmp_path: Path
) -> None:
    port = _free_port()
    dead = f"http://127.0.0.1:{port}"
    backend = FederatedBackend([cluster.workers["a"], dead], timeout=1.0, backoff_base=0.1)
    with served(hub_app(backend, None)) as hub_port:
        hub = f"http://127.0.0.1:{hub_port}"
        r = httpx.get(f"{hub}/api/entries", params={"limit": 1000}, timeout=10)
        assert [e["id"] for e in r.json()["entries"]] == [
            i for i in merged_order(cluster.entries) if i.startswith("a")
        ]
        assert r.headers[NOTICE_HEADER] == dead
        ready = httpx.get(f"{hub}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["unavailable"] == [dead]
        states = {w["url"]: w for w in httpx.get(f"{hub}/api/workers", timeout=10).json()}
        assert states[dead]["state"] == "down" and states[dead]["last_error"]
        assert states[cluster.workers["a"]]["state"] == "up"
        metrics = httpx.get(f"{hub}/metrics", timeout=10).text
        assert f'pilotfish_hub_worker_up{{worker="{dead}"}} 0.0' in metrics
        assert f'pilotfish_hub_worker_up{{worker="{cluster.workers["a"]}"}} 1.0' in metrics
        # the worker comes up on that port: the hub's retries find it
        late = local_backend(tmp_path / "late", "late", [make(1000)])
        with served(create_app(late, None), port=port):
            wait_for(
                lambda: httpx.get(f"{hub}/readyz", timeout=10).json()["unavailable"] == [],
                "the hub to notice the worker",
            )
            r = httpx.get(f"{hub}/api/entries", params={"limit": 1}, timeout=10)
            assert [e["id"] for e in r.json()["entries"]] == ["n-1000"]
            assert NOTICE_HEADER not in r.headers
        late.store.close()


def test_a_slow_worker_never_holds_up_the_others(cluster: Cluster) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        slow = f"http://127.0.0.1:{silent.getsockname()[1]}"
        backend = FederatedBackend([cluster.workers["b"], slow], timeout=0.5, backoff_base=0.05)
        with served(hub_app(backend, None)) as hub_port:
            hub = f"http://127.0.0.1:{hub_port}"
            for _ in range(3):  # each time the slow one is asked again, after its backoff
                time.sleep(0.1)
                started = time.monotonic()
                r = httpx.get(f"{hub}/api/stats", params={"bucket": "1h"}, timeout=30)
                assert time.monotonic() - started < 2.5  # its own timeout, not ours
                assert sum(b["count"] for b in r.json()) == len(cluster.entries["b"])
                assert r.headers[NOTICE_HEADER] == slow
            metrics = httpx.get(f"{hub}/metrics", timeout=10).text
            failures = f'pilotfish_hub_worker_failures_total{{worker="{slow}"}}'
            line = next(x for x in metrics.splitlines() if x.startswith(failures))
            assert float(line.split()[-1]) >= 2
            assert "pilotfish_hub_partial_answers_total" in metrics


def test_a_pcap_export_past_its_limit_is_cut_to_whole_frames(
    cluster: Cluster, tmp_path: Path
) -> None:
    backend = FederatedBackend(list(cluster.workers.values()), export_limit=24 + 3 * (16 + 64) + 40)
    with served(hub_app(backend, None)) as hub_port:
        r = httpx.get(f"http://127.0.0.1:{hub_port}/api/export.pcap", timeout=30)
        counters = httpx.get(f"http://127.0.0.1:{hub_port}/api/metrics", timeout=10).json()
    path = tmp_path / "cut.pcap"
    path.write_bytes(r.content)
    assert _capinfos_count(path) == 2 * 3  # three whole 64-byte frames from each worker
    assert counters["hub"]["exports_cut"] == 2


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/entries", {"q": "http && stauts == 1"}, 400),
        ("/api/entries", {"before": "123"}, 400),
        ("/api/entries", {"after": "h.zz"}, 400),
        ("/api/entries", {"limit": "lots"}, 400),
        ("/api/entries", {"lmit": "5"}, 400),
        ("/api/stats", {"bucket": "soon"}, 400),
        ("/api/servicemap", {"latency": "maybe"}, 400),
        ("/api/export.pcap", {"q": "(("}, 400),
        ("/api/entries/" + "x" * 300, {}, 404),
    ],
)
def test_bad_input_is_a_4xx_json_error(
    cluster: Cluster, path: str, params: dict[str, str], status: int
) -> None:
    r = cluster.get(path, **params)
    assert r.status_code == status and r.json()["error"]


def test_bad_stream_filter_is_refused_before_any_worker_is_asked(cluster: Cluster) -> None:
    with connect(cluster.hub.replace("http", "ws") + "/api/stream?q=((", open_timeout=10) as ws:
        message = json.loads(ws.recv(10))
    assert message["type"] == "error" and "position" in message
    assert all(b.feed.clients == 0 for b in cluster.backends.values())


def test_metrics_sum_the_workers_and_list_each(cluster: Cluster) -> None:
    snapshot = cluster.get("/api/metrics").json()
    assert snapshot["capture"]["received"] == 2 * 1234  # both workers' stats files
    urls = [w["url"] for w in snapshot["hub"]["workers"]]
    assert urls == [cluster.workers["a"], cluster.workers["b"]]
    text = cluster.get("/metrics").text
    assert "pilotfish_packets_received_total 2468.0" in text
    for url in urls:
        assert f'pilotfish_worker_packets_received_total{{worker="{url}"}} 1234.0' in text
    assert T0 > 0
