"""Metrics exposition: empty stats still give every family, with zeros."""

from prometheus_client.parser import text_string_to_metric_families

from pilotfish.api.metrics import exposition


def test_every_family_present_even_without_stats() -> None:
    names = {f.name for f in text_string_to_metric_families(exposition(dict)().decode())}
    assert {
        "pilotfish_packets_received",
        "pilotfish_packets_dropped",
        "pilotfish_entries",
        "pilotfish_store_bytes",
        "pilotfish_websocket_dropped_messages",
    } <= names
