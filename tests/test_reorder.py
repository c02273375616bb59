"""Reorderer: entries come out in timestamp order, within the memory bound."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.model import Endpoint, Entry, Payload
from pilotfish.reorder import Reorderer, entry_cost

EP = Endpoint(ip="10.0.0.1", port=80)


def entry(ts: float, body: str = "") -> Entry:
    return Entry(
        id=f"n-{ts}",
        protocol="http",
        timestamp=ts,
        elapsed_us=None,
        src=EP,
        dst=EP,
        response=Payload(body=body),
    )


def test_holds_until_watermark_then_releases_in_order() -> None:
    out: list[float] = []
    r = Reorderer(lambda e: out.append(e.timestamp))
    for ts in (3.0, 1.0, 2.0):
        r.add(entry(ts))
    r.release(2.0)
    assert out == [1.0]
    r.release(10.0)
    assert out == [1.0, 2.0, 3.0]
    assert len(r) == 0 and r.held_bytes == 0


def test_flush_empties_everything_in_order() -> None:
    out: list[float] = []
    r = Reorderer(lambda e: out.append(e.timestamp))
    for ts in (5.0, 4.0, 6.0):
        r.add(entry(ts))
    r.flush()
    assert out == [4.0, 5.0, 6.0]
    assert r.late == 0


def test_bound_forces_early_release_and_counts_late_entries() -> None:
    out: list[float] = []
    one = entry_cost(entry(0.0, "x" * 1000))
    r = Reorderer(lambda e: out.append(e.timestamp), max_bytes=2 * one)
    r.add(entry(2.0, "x" * 1000))
    r.add(entry(3.0, "x" * 1000))
    r.add(entry(4.0, "x" * 1000))  # over the bound: 2.0 goes out early
    assert out == [2.0] and r.forced == 1
    r.add(entry(1.0, "x" * 1000))  # older than what was released: out of order
    r.flush()
    assert out[0] == 2.0 and sorted(out[1:]) == out[1:]
    assert r.late == 1
    assert r.held_bytes == 0


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=200))
def test_any_arrival_order_is_sorted_without_bound(stamps: list[float]) -> None:
    out: list[float] = []
    r = Reorderer(lambda e: out.append(e.timestamp))
    for ts in stamps:
        r.add(entry(ts))
    r.flush()
    assert out == sorted(stamps)
