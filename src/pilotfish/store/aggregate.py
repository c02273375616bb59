"""Stats buckets and the service map, computed from plain rows (no I/O here).

`buckets(rows, bucket_s)` takes `(ts, group, elapsed_us, answered, error)` rows;
`service_map(rows)` takes `(source node key, target node key, protocol, elapsed_us,
answered, error)` rows whose node keys SQLite computes with the `NODE_COLUMNS` select list
(one string per endpoint, so grouping costs one dict lookup per row).  The store bounds how
many rows it feeds in; memory here is one int per answered row (for the percentiles) plus
one record per bucket/edge.

Percentiles are nearest-rank over the answered rows of a bucket or edge: the p-th
percentile of n sorted values is the value at rank ceil(p/100 * n); None when no row of the
group has a response.  Errors follow `schema.is_error`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from pilotfish.store.base import Bucket, MapEdge, MapNode, ServiceMap

BucketRow = tuple[float, str, int, int, int]
"""(timestamp, group, elapsed_us, answered 0/1, error 0/1)"""

MapRow = tuple[str, str, str, int, int, int]
"""(source node key, target node key, protocol, elapsed_us, answered 0/1, error 0/1)"""

_SEP: Final = "\x1f"


def _node_key_sql(side: str) -> str:
    """SQL for an endpoint's node key "kind<US>namespace<US>name" (see `node_from_key`)."""
    sep = " || char(31) || "
    return (
        f"CASE WHEN {side}_service <> '' THEN 'service'{sep}{side}_namespace{sep}{side}_service "
        f"WHEN {side}_pod <> '' THEN 'pod'{sep}{side}_namespace{sep}{side}_pod "
        f"WHEN {side}_name <> '' THEN 'external'{sep}{side}_namespace{sep}{side}_name "
        f"ELSE 'address'{sep}''{sep}{side}_ip END"
    )


NODE_COLUMNS: Final = (
    f"{_node_key_sql('src')}, {_node_key_sql('dst')}, protocol, elapsed, answered, error"
)
"""The SELECT list that produces `MapRow`s from the entry table."""


def percentile(ordered: list[int], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for no values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


class _Acc:
    __slots__ = ("count", "errors", "latencies")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.latencies: list[int] = []

    def add(self, elapsed: int, answered: int, error: int) -> None:
        self.count += 1
        self.errors += error
        if answered:
            self.latencies.append(elapsed)

    def ordered(self) -> list[int]:
        self.latencies.sort()
        return self.latencies


def buckets(rows: Iterable[BucketRow], bucket_s: float) -> list[Bucket]:
    """Group rows by time bucket (start = floor(ts / bucket_s) * bucket_s) and group."""
    if not bucket_s > 0 or math.isinf(bucket_s):
        raise ValueError(f"bucket_s must be a positive number of seconds, not {bucket_s!r}")
    accs: dict[tuple[int, str], _Acc] = {}
    for ts, group, elapsed, answered, error in rows:
        key = (math.floor(ts / bucket_s), group)
        acc = accs.get(key)
        if acc is None:
            acc = accs[key] = _Acc()
        acc.add(elapsed, answered, error)
    out: list[Bucket] = []
    for (index, group), acc in sorted(accs.items()):
        ordered = acc.ordered()
        out.append(
            Bucket(
                start=index * bucket_s,
                count=acc.count,
                errors=acc.errors,
                p50_us=percentile(ordered, 50),
                p95_us=percentile(ordered, 95),
                p99_us=percentile(ordered, 99),
                group=group,
            )
        )
    return out


def node_from_key(key: str) -> MapNode:
    """The node of a key: a service, else a pod, else a name, else the bare address."""
    kind, namespace, name = key.split(_SEP, 2)
    if kind == "address":
        return MapNode(name, name, "", "external")
    node_id = f"{namespace}/{name}" if namespace else name
    return MapNode(node_id, name, namespace, kind)


def service_map(rows: Iterable[MapRow]) -> ServiceMap:
    """Nodes and edges (source -> target per protocol) with counts, errors, p50/p95."""
    edges: dict[tuple[str, str, str], _Acc] = {}
    for source, target, protocol, elapsed, answered, error in rows:
        key = (source, target, protocol)
        acc = edges.get(key)
        if acc is None:
            acc = edges[key] = _Acc()
        acc.add(elapsed, answered, error)
    nodes: dict[str, MapNode] = {}
    out_edges = []
    for (source, target, protocol), acc in edges.items():
        src, dst = node_from_key(source), node_from_key(target)
        nodes[src.id] = src
        nodes[dst.id] = dst
        ordered = acc.ordered()
        out_edges.append(
            MapEdge(
                source=src.id,
                target=dst.id,
                protocol=protocol,
                count=acc.count,
                errors=acc.errors,
                p50_us=percentile(ordered, 50),
                p95_us=percentile(ordered, 95),
            )
        )
    out_edges.sort(key=lambda e: (e.source, e.target, e.protocol))
    return ServiceMap(nodes=[nodes[k] for k in sorted(nodes)], edges=out_edges)
