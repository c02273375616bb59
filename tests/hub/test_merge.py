"""Merging aggregates: buckets and service maps of split rows equal those of all rows;
counters summed leaf by leaf; pcap files interleaved by time, odd inputs counted."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture.pcapfile import PcapFileSource, PcapWriter
from pilotfish.hub.merge import merge_buckets, merge_maps, merge_pcaps, sum_trees
from pilotfish.store.aggregate import buckets, service_map
from pilotfish.store.base import Bucket

NODES = ("pod\x1fshop\x1fcart-1", "service\x1fshop\x1fapi", "address\x1f\x1f10.0.0.9")

bucket_rows = st.lists(
    st.tuples(
        st.floats(0, 600, allow_nan=False),
        st.sampled_from(("", "http", "dns")),
        st.integers(0, 10_000),
        st.integers(0, 1),
        st.integers(0, 1),
    ),
    max_size=80,
)
map_rows = st.lists(
    st.tuples(
        st.sampled_from(NODES),
        st.sampled_from(NODES),
        st.sampled_from(("http", "dns")),
        st.integers(0, 10_000),
        st.integers(0, 1),
        st.integers(0, 1),
    ),
    max_size=80,
)


@given(rows=bucket_rows, split=st.lists(st.integers(0, 2), min_size=80, max_size=80))
def test_merged_buckets_equal_the_buckets_of_all_rows(
    rows: list[tuple[float, str, int, int, int]], split: list[int]
) -> None:
    parts = [[r for r, s in zip(rows, split, strict=False) if s == k] for k in range(3)]
    merged = merge_buckets(buckets(p, 60, latency=True) for p in parts)
    assert merged == buckets(rows, 60)
    assert merge_buckets(buckets(p, 60, latency=True) for p in parts[:1]) == buckets(parts[0], 60)


@given(rows=map_rows, split=st.lists(st.booleans(), min_size=80, max_size=80))
def test_merged_maps_equal_the_map_of_all_rows(
    rows: list[tuple[str, str, str, int, int, int]], split: list[bool]
) -> None:
    a = [r for r, s in zip(rows, split, strict=False) if s]
    b = [r for r, s in zip(rows, split, strict=False) if not s]
    merged = merge_maps([service_map(a, latency=True), service_map(b, latency=True)], True)
    assert merged == service_map(rows, latency=True)


def test_percentiles_without_histograms_are_not_guessed() -> None:
    lone = Bucket(0.0, 2, 0, 5.0, 9.0, 9.0)
    assert merge_buckets([[lone]]) == [lone]  # one contributor: its own percentiles stand
    (merged,) = merge_buckets([[lone], [Bucket(0.0, 1, 1, 7.0, 7.0, 7.0, latency=[(7, 1)])]])
    assert (merged.count, merged.errors, merged.p50_us) == (3, 1, None)


def test_sum_trees_adds_numbers_leaf_by_leaf() -> None:
    got = sum_trees(
        [
            {"capture": {"received": 3, "backend": "afpacket"}, "ok": True, "x": 1.5},
            {"capture": {"received": 4, "backend": "afxdp", "dropped": 1}, "x": 1},
            {"capture": 7},
        ]
    )
    assert got == {
        "capture": {"received": 7, "backend": "afpacket", "dropped": 1},
        "ok": True,
        "x": 2.5,
    }


def _pcap(path: Path, stamps: list[float], linktype: int = 1) -> None:
    with PcapWriter(path, linktype) as w:
        for ts in stamps:
            w.write(ts, bytes(60))


def _read(data: bytes, tmp: Path) -> list[float]:
    path = tmp / "out.pcap"
    path.write_bytes(data)
    source = PcapFileSource(path)
    try:
        return [f[0] for batch in source.batches() for f in batch]
    finally:
        source.close()


def test_pcaps_interleave_by_time(tmp_path: Path) -> None:
    _pcap(tmp_path / "a.pcap", [1.0, 3.0, 5.000001])
    _pcap(tmp_path / "b.pcap", [2.0, 4.0, 6.0, 7.0])
    (tmp_path / "empty.pcap").write_bytes(b"")
    out = io.BytesIO()
    counters = merge_pcaps([tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "empty.pcap"], out)
    assert counters == {"frames": 7, "skipped_linktype": 0, "damaged_inputs": 0}
    assert _read(out.getvalue(), tmp_path) == [1.0, 2.0, 3.0, 4.0, 5.000001, 6.0, 7.0]


def test_other_link_types_and_damage_are_counted(tmp_path: Path) -> None:
    _pcap(tmp_path / "a.pcap", [1.0, 2.0])
    _pcap(tmp_path / "sll.pcap", [1.5], linktype=276)
    _pcap(tmp_path / "cut.pcap", [0.5, 3.0])
    cut = (tmp_path / "cut.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(cut[:-10])  # ends inside its second record
    out = io.BytesIO()
    counters = merge_pcaps([tmp_path / p for p in ("a.pcap", "sll.pcap", "cut.pcap")], out)
    assert counters == {"frames": 3, "skipped_linktype": 1, "damaged_inputs": 1}
    assert _read(out.getvalue(), tmp_path) == [0.5, 1.0, 2.0]


def test_no_inputs_give_an_empty_capture() -> None:
    out = io.BytesIO()
    assert merge_pcaps([], out)["frames"] == 0 and len(out.getvalue()) == 24
