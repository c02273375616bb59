"""The flow counters: plain ints, one dict for reports, the closes summed by reason."""

from __future__ import annotations

from dataclasses import fields

from pilotfish.flows.stats import FlowStats


def test_fresh_counters_are_zero_ints() -> None:
    stats = FlowStats()
    assert all(getattr(stats, f.name) == 0 for f in fields(stats))
    assert stats.flows_closed == 0


def test_as_dict_lists_every_counter_and_the_closed_total() -> None:
    stats = FlowStats(closed_fin=3, closed_rst=1, closed_idle=2, closed_evicted=4)
    stats.closed_end += 5
    stats.closed_reused += 6
    report = stats.as_dict()
    assert set(report) == {f.name for f in fields(stats)} | {"flows_closed"}
    assert report["flows_closed"] == 21
    assert all(isinstance(value, int) for value in report.values())
