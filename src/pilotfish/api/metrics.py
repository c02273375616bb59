"""Prometheus exposition of a backend's counters, on a registry of the app's own.

Mapping (from the capture process's stats and the live feed):
pilotfish_packets_received_total            capture.received
pilotfish_packets_dropped_total{stage}      capture.dropped (kernel/ring), capture.if_dropped
pilotfish_bytes_processed_total             pipeline.bytes
pilotfish_entries_total{protocol}           pipeline.entries
pilotfish_matched_pairs_total               entries with both request and response (= entries)
pilotfish_dropped_streams_total{protocol}   pipeline.dissect_errors + dissector_crashes
pilotfish_reassembly_gaps_total             pipeline.flows.gaps
pilotfish_live_streams                      open_flows (gauge)
pilotfish_store_bytes                       store.bytes (gauge)
pilotfish_websocket_clients                 websocket.clients (gauge)
pilotfish_websocket_dropped_messages_total  websocket.dropped + websocket.overflow
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


def _num(tree: dict[str, Any], *path: str) -> float:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict):
            return 0.0
        node = node.get(key)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else 0.0


class _BackendCollector(Collector):
    def __init__(self, source: Callable[[], dict[str, Any]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        s = self._source()
        yield CounterMetricFamily(
            "pilotfish_packets_received",
            "Packets handed to pilotfish",
            _num(s, "capture", "received"),
        )
        dropped = CounterMetricFamily(
            "pilotfish_packets_dropped", "Packets lost before pilotfish saw them", labels=["stage"]
        )
        dropped.add_metric(["kernel"], _num(s, "capture", "dropped"))
        dropped.add_metric(["interface"], _num(s, "capture", "if_dropped"))
        yield dropped
        yield CounterMetricFamily(
            "pilotfish_bytes_processed", "Captured bytes processed", _num(s, "pipeline", "bytes")
        )
        entries = CounterMetricFamily("pilotfish_entries", "Entries produced", labels=["protocol"])
        streams = CounterMetricFamily(
            "pilotfish_dropped_streams", "Streams a dissector gave up on", labels=["protocol"]
        )
        raw = s.get("pipeline")
        pipeline: dict[str, Any] = raw if isinstance(raw, dict) else {}
        total = 0.0
        for proto, n in (pipeline.get("entries") or {}).items():
            entries.add_metric([proto], float(n))
            total += float(n)
        failed: dict[str, float] = {}
        for key in ("dissect_errors", "dissector_crashes"):
            for proto, n in (pipeline.get(key) or {}).items():
                failed[proto] = failed.get(proto, 0.0) + float(n)
        for proto, n in failed.items():
            streams.add_metric([proto], n)
        yield entries
        yield streams
        yield CounterMetricFamily("pilotfish_matched_pairs", "Entries built", total)
        yield CounterMetricFamily(
            "pilotfish_reassembly_gaps",
            "Holes skipped in TCP streams",
            _num(s, "pipeline", "flows", "gaps"),
        )
        yield GaugeMetricFamily(
            "pilotfish_live_streams", "Flows being tracked", _num(s, "open_flows")
        )
        yield GaugeMetricFamily(
            "pilotfish_store_bytes", "Entry store size", _num(s, "store", "bytes")
        )
        yield GaugeMetricFamily(
            "pilotfish_websocket_clients", "Live stream clients", _num(s, "websocket", "clients")
        )
        yield CounterMetricFamily(
            "pilotfish_websocket_dropped_messages",
            "Live entries not delivered to slow clients",
            _num(s, "websocket", "dropped") + _num(s, "websocket", "overflow"),
        )


def exposition(source: Callable[[], dict[str, Any]]) -> Callable[[], bytes]:
    """A function rendering the current metrics as Prometheus text (own registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_BackendCollector(source))
    return lambda: generate_latest(registry)
