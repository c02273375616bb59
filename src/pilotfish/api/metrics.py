"""Prometheus exposition of a backend's counters, on a registry of the app's own.

`Exposition(source)` owns a `CollectorRegistry` (never the process-global one) with one
collector that maps the nested counters of `Backend.metrics()` (the capture process's
`stats.json` merged with the API side's own) to metric families.  Missing or non-numeric
values read as 0, so every family is always present.  Mapping:

pilotfish_packets_received_total             capture.received
pilotfish_packets_dropped_total{stage}       ring: capture.extra.ring_dropped (the part of
                                             capture.dropped a full capture ring caused: TPACKET_V3
                                             blocks, XSK RX/fill rings, PF_RING's ring); kernel:
                                             capture.dropped - ring (the rest of what the backend
                                             counts, e.g. frames too large for an XSK frame);
                                             interface: capture.if_dropped.  The three stages sum
                                             to dropped + if_dropped
pilotfish_bytes_processed_total              pipeline.bytes
pilotfish_reassembled_bytes_total            pipeline.flows.delivered_bytes (payload handed to
                                             dissectors in stream order)
pilotfish_entries_total{protocol}            pipeline.entries
pilotfish_matched_pairs_total{protocol}      pipeline.pairs (entries with both a request and a
                                             response; the rest are lone halves)
pilotfish_dropped_streams_total{protocol}    pipeline.dissect_errors + pipeline.dissector_crashes
pilotfish_live_streams                       open_flows (gauge)
pilotfish_store_bytes                        store.bytes (gauge)
pilotfish_spool_bytes                        spool.bytes (gauge)
pilotfish_websocket_clients                  websocket.clients (gauge)
pilotfish_websocket_dropped_messages_total   websocket.dropped + websocket.overflow
pilotfish_api_loop_late_seconds              api.late_ms / 1000 (gauge: how late the API's
                                             event loop runs)
pilotfish_api_query_yields_total             api.yields (store questions that waited for the
                                             live streams)
pilotfish_dropped_total{what}                every other "lost something" counter, see _DROPS

A hub's snapshot is its workers' counters summed (so the families above are totals over
the workers, except the websocket ones, which are the hub's own clients) plus a "hub"
section, which adds (only then):

pilotfish_hub_worker_up{worker}              1 when the worker answered last time (gauge)
pilotfish_hub_worker_failures_total{worker}  failed calls to the worker
pilotfish_hub_worker_requests_total{worker}  calls to the worker
pilotfish_hub_worker_latency_seconds{worker} duration of its last successful call (gauge)
pilotfish_hub_partial_answers_total          answers that lacked at least one worker
pilotfish_hub_stream_reconnects_total        live-stream reconnections to workers
pilotfish_worker_packets_received_total{worker}, pilotfish_worker_packets_dropped_total
{worker}, pilotfish_worker_entries_total{worker}, pilotfish_worker_store_bytes{worker}:
the same counters as above, per worker (from its last answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DROPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode_malformed", ("pipeline", "decode", "malformed")),
    ("decode_truncated", ("pipeline", "decode", "truncated")),
    ("fragment_timeouts", ("pipeline", "decode", "fragment_timeouts")),
    ("reassembly_gaps", ("pipeline", "flows", "gaps")),
    ("reassembly_gap_bytes", ("pipeline", "flows", "gap_bytes")),
    ("pending_overflows", ("pipeline", "flows", "pending_overflows")),
    ("flows_evicted", ("pipeline", "flows", "closed_evicted")),
    ("cut_streams", ("pipeline", "flows", "cut_streams")),
    ("bogus_segments", ("pipeline", "flows", "bogus_segments")),
    ("reorder_late", ("pipeline", "reorder", "late")),
    ("store_rejected", ("store", "rejected")),
    ("store_evicted", ("store", "evicted")),
    ("spool_rejected", ("spool", "rejected")),
    ("spool_segments", ("spool", "dropped_segments")),
    ("live_feed_overflow", ("websocket", "overflow")),
    ("live_clients_refused", ("websocket", "refused")),
    ("feed_sender_dropped", ("feed", "dropped")),
    ("feed_sender_unconnected", ("feed", "unconnected")),
    ("feed_bad_frames", ("feed_receiver", "bad_frames")),
)


def number(tree: Any, *path: str) -> float:
    """tree[path[0]][path[1]]... as a float, 0 when absent or not a number."""
    node = tree
    for key in path:
        if not isinstance(node, dict):
            return 0.0
        node = node.get(key)
    if isinstance(node, bool) or not isinstance(node, int | float):
        return 0.0
    return float(node)


def _by_label(tree: Any, *path: str) -> dict[str, float]:
    node = tree
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return {}
    return {str(k): number(node, k) for k in node}


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(name: str, doc: str, label: str, values: dict[str, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _drop_stages(tree: Any, *prefix: str) -> dict[str, float]:
    """Packets lost before pilotfish saw them, by stage (capture counters under `prefix`):
    ring + kernel = capture.dropped (the ring part capped at it), interface = if_dropped."""
    dropped = number(tree, *prefix, "capture", "dropped")
    ring = min(number(tree, *prefix, "capture", "extra", "ring_dropped"), dropped)
    interface = number(tree, *prefix, "capture", "if_dropped")
    return {"kernel": dropped - ring, "ring": ring, "interface": interface}


def families(s: dict[str, Any]) -> Iterator[Metric]:
    """The metric families for one metrics() snapshot (see the module docstring)."""
    yield _counter(
        "pilotfish_packets_received",
        "Packets handed to pilotfish",
        number(s, "capture", "received"),
    )
    yield _labelled(
        "pilotfish_packets_dropped",
        "Packets lost before pilotfish saw them",
        "stage",
        _drop_stages(s),
    )
    yield _counter("pilotfish_bytes_processed", "Captured bytes", number(s, "pipeline", "bytes"))
    yield _counter(
        "pilotfish_reassembled_bytes",
        "Payload bytes delivered to dissectors in stream order",
        number(s, "pipeline", "flows", "delivered_bytes"),
    )
    entries = _by_label(s, "pipeline", "entries")
    yield _labelled("pilotfish_entries", "Entries produced", "protocol", entries)
    yield _labelled(
        "pilotfish_matched_pairs",
        "Entries pairing a request with its response",
        "protocol",
        _by_label(s, "pipeline", "pairs"),
    )
    failed = _by_label(s, "pipeline", "dissect_errors")
    for proto, n in _by_label(s, "pipeline", "dissector_crashes").items():
        failed[proto] = failed.get(proto, 0.0) + n
    yield _labelled(
        "pilotfish_dropped_streams", "Streams a dissector gave up on", "protocol", failed
    )
    yield GaugeMetricFamily("pilotfish_live_streams", "Flows tracked now", number(s, "open_flows"))
    yield GaugeMetricFamily(
        "pilotfish_store_bytes", "Entry store size in bytes", number(s, "store", "bytes")
    )
    yield GaugeMetricFamily(
        "pilotfish_spool_bytes", "Packet spool size in bytes", number(s, "spool", "bytes")
    )
    yield GaugeMetricFamily(
        "pilotfish_websocket_clients", "Live stream clients", number(s, "websocket", "clients")
    )
    yield _counter(
        "pilotfish_websocket_dropped_messages",
        "Live entries not delivered to slow clients",
        number(s, "websocket", "dropped") + number(s, "websocket", "overflow"),
    )
    yield GaugeMetricFamily(
        "pilotfish_api_loop_late_seconds",
        "How late the API's event loop runs",
        number(s, "api", "late_ms") / 1000,
    )
    yield _counter(
        "pilotfish_api_query_yields",
        "Store questions that waited for the live streams",
        number(s, "api", "yields"),
    )
    yield _labelled(
        "pilotfish_dropped",
        "Things counted and dropped along the pipeline",
        "what",
        {what: number(s, *path) for what, path in _DROPS},
    )


def _per_worker(
    name: str,
    doc: str,
    workers: list[dict[str, Any]],
    value: Callable[[dict[str, Any]], float],
    kind: type[CounterMetricFamily | GaugeMetricFamily] = CounterMetricFamily,
) -> CounterMetricFamily | GaugeMetricFamily:
    """One sample per worker, labelled with its URL (a counter unless `kind` says gauge)."""
    family = kind(name, doc, labels=["worker"])
    for w in workers:
        family.add_metric([str(w.get("url", ""))], value(w))
    return family


def hub_families(s: dict[str, Any]) -> Iterator[Metric]:
    """The hub's own families (see the module docstring); nothing for a worker's snapshot."""
    hub = s.get("hub")
    if not isinstance(hub, dict):
        return
    raw = hub.get("workers")
    workers = [w for w in raw if isinstance(w, dict)] if isinstance(raw, list) else []
    yield _per_worker(
        "pilotfish_hub_worker_up",
        "Worker answered last time",
        workers,
        lambda w: float(w.get("up") is True),
        GaugeMetricFamily,
    )
    yield _per_worker(
        "pilotfish_hub_worker_failures",
        "Failed calls to the worker",
        workers,
        lambda w: number(w, "failures_total"),
    )
    yield _per_worker(
        "pilotfish_hub_worker_requests",
        "Calls to the worker",
        workers,
        lambda w: number(w, "requests_total"),
    )
    yield _per_worker(
        "pilotfish_hub_worker_latency_seconds",
        "Duration of the worker's last successful call",
        workers,
        lambda w: number(w, "latency_ms") / 1000.0,
        GaugeMetricFamily,
    )
    yield _counter(
        "pilotfish_hub_partial_answers", "Answers missing a worker", number(hub, "partial_answers")
    )
    yield _counter(
        "pilotfish_hub_stream_reconnects",
        "Live-stream reconnections to workers",
        number(hub, "stream_reconnects"),
    )
    yield _per_worker(
        "pilotfish_worker_packets_received",
        "Packets handed to the worker",
        workers,
        lambda w: number(w, "metrics", "capture", "received"),
    )
    yield _per_worker(
        "pilotfish_worker_packets_dropped",
        "Packets the worker lost before seeing them",
        workers,
        lambda w: sum(_drop_stages(w, "metrics").values()),
    )
    yield _per_worker(
        "pilotfish_worker_entries",
        "Entries the worker produced",
        workers,
        lambda w: sum(_by_label(w, "metrics", "pipeline", "entries").values()),
    )
    yield _per_worker(
        "pilotfish_worker_store_bytes",
        "The worker's entry store size in bytes",
        workers,
        lambda w: number(w, "metrics", "store", "bytes"),
        GaugeMetricFamily,
    )


class _Snapshot(Collector):
    """Collects from the last snapshot handed to `Exposition.render`."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snapshot)
        yield from hub_families(self.snapshot)


class Exposition:
    """Prometheus text for metrics() snapshots, on this object's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _Snapshot()
        self.registry.register(self._collector)

    def render(self, snapshot: dict[str, Any]) -> bytes:
        self._collector.snapshot = snapshot
        return generate_latest(self.registry)


def exposition_of(source: Callable[[], dict[str, Any]]) -> Callable[[], bytes]:
    """Convenience for synchronous sources: a function rendering `source()` now."""
    exp = Exposition()
    return lambda: exp.render(source())
