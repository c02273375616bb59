"""DecodeStats: plain counters with a dict view for reports."""

from __future__ import annotations

from pilotfish.decode.stats import DecodeStats


def test_counters_start_at_zero_and_show_in_as_dict() -> None:
    stats = DecodeStats()
    assert set(stats.as_dict().values()) == {0}
    stats.malformed += 2
    stats.reassembled += 1
    view = stats.as_dict()
    assert view["malformed"] == 2
    assert view["reassembled"] == 1
    assert all(isinstance(v, int) for v in view.values())


def test_counters_named_by_the_contract_exist() -> None:
    names = set(DecodeStats().as_dict())
    assert {"fragments", "reassembled", "fragment_timeouts", "fragment_overflow"} <= names
    assert {"non_ip", "icmp", "other_proto", "malformed", "truncated", "unknown_linktype"} <= names


def test_slots_reject_misspelled_counters() -> None:
    stats = DecodeStats()
    try:
        stats.malformd = 1  # type: ignore[attr-defined]
    except AttributeError:
        return
    raise AssertionError("a misspelled counter was silently created")
