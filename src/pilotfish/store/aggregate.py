"""Stats buckets and the service map, computed from plain rows (no SQL, no I/O here).

`buckets(rows, bucket_s)` takes `(ts, group, elapsed_us, answered, error)` rows;
`service_map(rows)` takes `(src key parts, dst key parts, protocol, elapsed_us, answered,
error)` rows (see `NODE_COLUMNS`).  Both are fed by the store, which bounds how many rows
it reads; memory here is one int per answered row (for the percentiles) plus one record per
bucket/edge.

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

Side = tuple[str, str, str, str, str]
"""(namespace, service, pod, name, ip) of one endpoint."""

MapRow = tuple[str, str, str, str, str, str, str, str, str, str, str, int, int, int]
"""src Side + dst Side + (protocol, elapsed_us, answered, error)."""

NODE_COLUMNS: Final = (
    "src_namespace, src_service, src_pod, src_name, src_ip, "
    "dst_namespace, dst_service, dst_pod, dst_name, dst_ip, "
    "protocol, elapsed, answered, error"
)


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


def node_of(side: Side) -> MapNode:
    """The service-map node of an endpoint: service, else pod, else name, else address."""
    namespace, service, pod, name, ip = side
    if service:
        return MapNode(_qualified(namespace, service), service, namespace, "service")
    if pod:
        return MapNode(_qualified(namespace, pod), pod, namespace, "pod")
    if name:
        return MapNode(_qualified(namespace, name), name, namespace, "external")
    return MapNode(ip, ip, "", "external")


def service_map(rows: Iterable[MapRow]) -> ServiceMap:
    """Nodes and edges (source -> target per protocol) with counts, errors, p50/p95."""
    nodes: dict[Side, MapNode] = {}
    edges: dict[tuple[str, str, str], _Acc] = {}
    for row in rows:
        src: Side = row[0:5]
        dst: Side = row[5:10]
        protocol, elapsed, answered, error = row[10], row[11], row[12], row[13]
        src_node = nodes.get(src)
        if src_node is None:
            src_node = nodes[src] = node_of(src)
        dst_node = nodes.get(dst)
        if dst_node is None:
            dst_node = nodes[dst] = node_of(dst)
        key = (src_node.id, dst_node.id, protocol)
        acc = edges.get(key)
        if acc is None:
            acc = edges[key] = _Acc()
        acc.add(elapsed, answered, error)
    unique = {n.id: n for n in nodes.values()}
    out_edges = []
    for (source, target, protocol), acc in sorted(edges.items()):
        ordered = acc.ordered()
        out_edges.append(
            MapEdge(
                source=source,
                target=target,
                protocol=protocol,
                count=acc.count,
                errors=acc.errors,
                p50_us=percentile(ordered, 50),
                p95_us=percentile(ordered, 95),
            )
        )
    return ServiceMap(nodes=[unique[k] for k in sorted(unique)], edges=out_edges)


def _qualified(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name
