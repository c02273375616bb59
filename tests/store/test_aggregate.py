"""Stats buckets and the service map: exact numbers on hand-made entries and rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.query import compile_query
from pilotfish.store.aggregate import (
    MAX_BINS,
    buckets,
    histogram,
    merge_latency,
    node_from_key,
    percentile,
    percentile_of,
    service_map,
)
from pilotfish.store.base import Bucket, MapEdge, MapNode
from pilotfish.store.sqlite import SqliteStore
from tests.store.entries import T0, make


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "e.db", 16 * 1024 * 1024)
    yield s
    s.close()


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([7], 99) == 7.0
    assert percentile([1, 2], 50) == 1.0
    assert percentile([1, 2], 51) == 2.0
    assert percentile([], 50) is None
    assert percentile([3, 9], 0) == 3.0


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=200), st.floats(0, 100))
def test_percentile_is_a_member_and_monotonic(values: list[int], p: float) -> None:
    ordered = sorted(values)
    got = percentile(ordered, p)
    assert got is not None and int(got) in values
    higher = percentile(ordered, min(100.0, p + 10))
    assert higher is not None and higher >= got


def test_buckets_from_rows() -> None:
    rows = [
        (100.0, "", 10, 1, 0),
        (159.9, "", 30, 1, 1),
        (160.0, "", 0, 0, 0),  # no response: counted, not in the percentiles
        (61.0, "", 5, 1, 0),
    ]
    assert buckets(rows, 60) == [
        Bucket(60.0, 2, 0, 5.0, 10.0, 10.0),
        Bucket(120.0, 2, 1, 30.0, 30.0, 30.0),
    ]


def test_buckets_without_answers_have_no_percentiles() -> None:
    assert buckets([(0.5, "g", 0, 0, 0)], 1) == [Bucket(0.0, 1, 0, None, None, None, "g")]


@pytest.mark.parametrize("width", [0, -1, float("nan"), float("inf")])
def test_bad_bucket_width_is_refused(width: float) -> None:
    with pytest.raises(ValueError, match="bucket_s"):
        buckets([(1.0, "", 1, 1, 0)], width)


def test_node_identity_prefers_service_then_pod_then_name_then_ip() -> None:
    assert node_from_key("service\x1fshop\x1fapi") == MapNode("shop/api", "api", "shop", "service")
    assert node_from_key("pod\x1fshop\x1fcart-1") == MapNode("shop/cart-1", "cart-1", "shop", "pod")
    assert node_from_key("external\x1f\x1fexample.com") == MapNode(
        "example.com", "example.com", "", "external"
    )
    assert node_from_key("address\x1f\x1f1.2.3.4") == MapNode("1.2.3.4", "1.2.3.4", "", "external")


def test_service_map_from_rows() -> None:
    rows = [
        ("pod\x1fa\x1fx", "service\x1fb\x1fy", "http", 10, 1, 0),
        ("pod\x1fa\x1fx", "service\x1fb\x1fy", "http", 30, 1, 1),
        ("pod\x1fa\x1fx", "service\x1fb\x1fy", "grpc", 0, 0, 0),
    ]
    got = service_map(rows)
    assert [n.id for n in got.nodes] == ["a/x", "b/y"]
    assert got.edges == [
        MapEdge("a/x", "b/y", "grpc", 1, 0, None, None),
        MapEdge("a/x", "b/y", "http", 2, 1, 10.0, 30.0),
    ]


# --- through the store, on hand-made entries -------------------------------------------------


def test_stats_counts_errors_and_percentiles(store: SqliteStore) -> None:
    latencies = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    store.add(
        [
            make(i, elapsed_us=latencies[i], status=503 if i < 3 else 200, ts=T0 + i)
            for i in range(10)
        ]
    )
    store.add([make(10, ts=T0 + 61, elapsed_us=None, status=None)])  # unanswered, next bucket
    store.add([make(11, protocol="grpc", status=14, ts=T0 + 62, elapsed_us=50)])
    store.add([make(12, protocol="dns", status="NXDOMAIN", ts=T0 + 63, elapsed_us=70)])
    store.add([make(13, protocol="dns", status="NOERROR", ts=T0 + 64, elapsed_us=90)])
    store.add([make(14, protocol="redis", status="error", ts=T0 + 65, elapsed_us=None)])
    store.commit()
    assert store.stats(None, 60) == [
        Bucket(T0, 10, 3, 500.0, 1000.0, 1000.0),
        Bucket(T0 + 60, 5, 3, 70.0, 90.0, 90.0),
    ]
    assert store.stats(compile_query("http"), 60) == [
        Bucket(T0, 10, 3, 500.0, 1000.0, 1000.0),
        Bucket(T0 + 60, 1, 0, None, None, None),
    ]
    grouped = store.stats(None, 3600, group_by="protocol")
    assert [(b.group, b.count, b.errors) for b in grouped] == [
        ("dns", 2, 1),
        ("grpc", 1, 1),
        ("http", 11, 3),
        ("redis", 1, 1),
    ]
    by_status = store.stats(None, 3600, group_by="status_code")
    assert {b.group: b.count for b in by_status} == {"0": 4, "14": 1, "200": 7, "503": 3}


def test_stats_rejects_unknown_groups(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="group"):
        store.stats(None, 60, group_by="request.body")


def test_stats_with_a_python_only_filter(store: SqliteStore) -> None:
    store.add([make(i, path=f"/p{i}", elapsed_us=i) for i in range(1, 11)])
    store.commit()
    got = store.stats(compile_query('path.matches("^/p[0-4]$")'), 3600)
    assert got == [Bucket(T0, 4, 0, 2.0, 4.0, 4.0)]


def test_servicemap_nodes_and_edges(store: SqliteStore) -> None:
    calls = [
        make(0, src_pod="cart-1", dst_service="api", elapsed_us=10),
        make(1, src_pod="cart-1", dst_service="api", elapsed_us=20, status=500),
        make(2, src_pod="cart-1", dst_service="api", elapsed_us=30),
        make(3, src_pod="web-1", dst_service="api", elapsed_us=5),
        make(
            4, src_pod="cart-1", dst_service="dns", protocol="dns", status="NOERROR", elapsed_us=7
        ),
        make(5, src_pod="", src_namespace="", dst_service="api", elapsed_us=None, status=None),
    ]
    store.add(calls)
    store.commit()
    got = store.servicemap(None)
    assert got.nodes == [
        MapNode("10.1.0.1", "10.1.0.1", "", "external"),
        MapNode("shop/api", "api", "shop", "service"),
        MapNode("shop/cart-1", "cart-1", "shop", "pod"),
        MapNode("shop/dns", "dns", "shop", "service"),
        MapNode("shop/web-1", "web-1", "shop", "pod"),
    ]
    assert got.edges == [
        MapEdge("10.1.0.1", "shop/api", "http", 1, 0, None, None),
        MapEdge("shop/cart-1", "shop/api", "http", 3, 1, 20.0, 30.0),
        MapEdge("shop/cart-1", "shop/dns", "dns", 1, 0, 7.0, 7.0),
        MapEdge("shop/web-1", "shop/api", "http", 1, 0, 5.0, 5.0),
    ]
    only_cart = store.servicemap(compile_query('src.pod == "cart-1" && http'))
    assert [(e.source, e.count) for e in only_cart.edges] == [("shop/cart-1", 3)]
    assert service_map([]).nodes == []


def test_streams_group_entries_by_flow(store: SqliteStore) -> None:
    store.add(
        [
            make(0, client_port=5000, stream="s1", elapsed_us=2_000_000),
            make(1, client_port=5000, stream="s1", elapsed_us=500_000),
            make(2, client_port=6000, stream="s2", protocol="dns", status="NOERROR"),
        ]
    )
    store.commit()
    refs = {r.stream: r for r in store.streams(None)}
    assert set(refs) == {"s1", "s2"}
    s1 = refs["s1"]
    assert (s1.client_ip, s1.client_port, s1.server_ip, s1.server_port) == (
        "10.1.0.1",
        5000,
        "10.2.0.1",
        80,
    )
    assert (s1.transport, s1.first_ts, s1.last_ts) == ("tcp", T0, T0 + 2.0)
    assert refs["s2"].transport == "udp" and refs["s2"].server_port == 53
    assert [r.stream for r in store.streams(compile_query("dns"))] == ["s2"]
    assert len(store.streams(None, limit=1)) == 1


@given(st.lists(st.lists(st.integers(0, 5_000), max_size=60), min_size=1, max_size=4))
def test_merged_histograms_give_the_percentiles_of_all_values(parts: list[list[int]]) -> None:
    merged = merge_latency(histogram(sorted(p)) for p in parts)
    everything = sorted(v for p in parts for v in p)
    for p in (50, 95, 99):
        assert percentile_of(merged, p) == percentile(everything, p)


def test_histograms_past_max_bins_are_coarsened_to_three_digits() -> None:
    values = list(range(100_000, 100_000 + MAX_BINS * 3))
    pairs = histogram(values)
    assert len(pairs) < MAX_BINS and sum(c for _, c in pairs) == len(values)
    exact = percentile(values, 95)
    assert exact is not None
    approx = percentile_of(pairs, 95)
    assert approx is not None and abs(approx - exact) / exact < 0.01


def test_latency_histograms_only_when_asked(store: SqliteStore) -> None:
    store.add([make(i, elapsed_us=100 * (i % 3)) for i in range(9)])
    store.commit()
    (plain,) = store.stats(None, 3600)
    (detailed,) = store.stats(None, 3600, latency=True)
    assert plain.latency is None and detailed.latency == [(0, 3), (100, 3), (200, 3)]
    (edge,) = store.servicemap(None, latency=True).edges
    assert edge.latency == detailed.latency and store.servicemap(None).edges[0].latency is None
