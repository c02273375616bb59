"""Metrics exposition: every family always present, the documented mapping, own registry."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from pilotfish.api.metrics import Exposition, exposition_of, number

FAMILIES = {
    "pilotfish_packets_received",
    "pilotfish_packets_dropped",
    "pilotfish_bytes_processed",
    "pilotfish_reassembled_bytes",
    "pilotfish_entries",
    "pilotfish_matched_pairs",
    "pilotfish_dropped_streams",
    "pilotfish_live_streams",
    "pilotfish_store_bytes",
    "pilotfish_spool_bytes",
    "pilotfish_websocket_clients",
    "pilotfish_websocket_dropped_messages",
    "pilotfish_dropped",
}


def parse(snapshot: dict[str, Any]) -> dict[str, Any]:
    text = Exposition().render(snapshot).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_family_present_even_without_stats() -> None:
    families = parse({})
    assert set(families) >= FAMILIES
    assert families["pilotfish_packets_received"].samples[0].value == 0


def test_mapping_of_pipeline_counters() -> None:
    families = parse(
        {
            "capture": {"received": 10, "dropped": 2},
            "pipeline": {
                "bytes": 500,
                "entries": {"http": 3, "dns": 4},
                "pairs": {"http": 2, "dns": 4},
                "dissect_errors": {"http": 1},
                "dissector_crashes": {"http": 2, "dns": 1},
                "flows": {"delivered_bytes": 321},
            },
            "open_flows": 8,
            "store": {"rejected": 9, "bytes": 4096},
            "websocket": {"clients": 2, "dropped": 5, "overflow": 1},
        }
    )
    pairs = {s.labels["protocol"]: s.value for s in families["pilotfish_matched_pairs"].samples}
    assert pairs == {"http": 2, "dns": 4}
    entries = {s.labels["protocol"]: s.value for s in families["pilotfish_entries"].samples}
    assert entries == {"http": 3, "dns": 4}
    assert families["pilotfish_reassembled_bytes"].samples[0].value == 321
    assert families["pilotfish_live_streams"].samples[0].value == 8
    gave_up = {s.labels["protocol"]: s.value for s in families["pilotfish_dropped_streams"].samples}
    assert gave_up == {"http": 3, "dns": 1}
    dropped = {s.labels["stage"]: s.value for s in families["pilotfish_packets_dropped"].samples}
    assert dropped == {"kernel": 2, "ring": 0, "interface": 0}
    assert families["pilotfish_store_bytes"].samples[0].value == 4096
    assert families["pilotfish_bytes_processed"].samples[0].value == 500
    assert families["pilotfish_websocket_clients"].samples[0].value == 2
    assert families["pilotfish_websocket_dropped_messages"].samples[0].value == 6
    whats = {s.labels["what"]: s.value for s in families["pilotfish_dropped"].samples}
    assert whats["store_rejected"] == 9 and whats["live_feed_overflow"] == 1


def _drop_stages(snapshot: dict[str, Any]) -> dict[str, float]:
    samples = parse(snapshot)["pilotfish_packets_dropped"].samples
    return {s.labels["stage"]: s.value for s in samples}


def test_ring_drops_are_the_part_of_dropped_a_full_ring_caused() -> None:
    capture = {"dropped": 10, "if_dropped": 3, "extra": {"ring_dropped": 7}}
    assert _drop_stages({"capture": capture}) == {"kernel": 3, "ring": 7, "interface": 3}
    # the stages sum to what the backend lost: dropped + if_dropped
    assert sum(_drop_stages({"capture": capture}).values()) == 13


def test_ring_drops_never_exceed_dropped() -> None:
    capture = {"dropped": 4, "extra": {"ring_dropped": 9}}
    assert _drop_stages({"capture": capture}) == {"kernel": 0, "ring": 4, "interface": 0}


@given(
    st.integers(0, 10**12),
    st.integers(0, 10**12),
    st.integers(0, 10**12),
)
def test_drop_stages_sum_to_the_total(dropped: int, ring: int, interface: int) -> None:
    capture = {"dropped": dropped, "if_dropped": interface, "extra": {"ring_dropped": ring}}
    stages = _drop_stages({"capture": capture})
    assert sum(stages.values()) == dropped + interface
    assert all(value >= 0 for value in stages.values())


def test_worker_drops_count_ring_drops_once() -> None:
    capture = {"dropped": 10, "if_dropped": 3, "extra": {"ring_dropped": 7}}
    snapshot = {"hub": {"workers": [{"url": "w1", "metrics": {"capture": capture}}]}}
    text = Exposition().render(snapshot).decode()
    found = {f.name: f for f in text_string_to_metric_families(text)}
    samples = found["pilotfish_worker_packets_dropped"].samples
    assert [(s.labels["worker"], s.value) for s in samples] == [("w1", 13)]


def test_nonsense_values_read_as_zero() -> None:
    families = parse({"capture": {"received": "lots", "dropped": True}, "pipeline": [1, 2]})
    assert families["pilotfish_packets_received"].samples[0].value == 0
    assert number({"a": {"b": 3}}, "a", "b") == 3 and number({"a": 1}, "a", "b") == 0


def test_the_global_registry_is_left_alone() -> None:
    before = {m.name for m in REGISTRY.collect()}
    render = exposition_of(lambda: {"capture": {"received": 1}})
    assert b"pilotfish_packets_received_total 1.0" in render()
    assert {m.name for m in REGISTRY.collect()} == before


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(st.lists(inner), st.dictionaries(st.text(), inner)),
    max_leaves=30,
)


@given(st.dictionaries(st.sampled_from(["capture", "pipeline", "store", "x"]), json_values))
def test_any_snapshot_renders_parseable_text(snapshot: dict[str, Any]) -> None:
    assert set(parse(snapshot)) >= FAMILIES
