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

With `latency=True` each bucket and edge also carries its latency histogram, the
(elapsed_us, count) pairs a hub needs to merge percentiles across workers exactly
(`merge_latency`, `percentile_of`).  A histogram is exact up to `MAX_BINS` distinct values;
beyond that its values are rounded down to three significant digits (under 1 % relative
error, at most about 900 pairs per decade of microseconds).
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, MutableSequence, Sequence
from operator import itemgetter
from typing import Any, Final

from pilotfish.store.base import Bucket, Latency, MapEdge, MapNode, ServiceMap

BucketRow = tuple[float, str, int, int, int]
"""(timestamp, group, elapsed_us, answered 0/1, error 0/1)"""

MapRow = tuple[str, str, str, int, int, int]
"""(source node key, target node key, protocol, elapsed_us, answered 0/1, error 0/1)"""

_SEP: Final = "\x1f"
MAX_BINS: Final = 2048


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


def percentile(ordered: Sequence[int], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for no values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def _coarse(value: int) -> int:
    """`value` rounded down to three significant digits."""
    if value < 1000:
        return value
    step: int = 10 ** (len(str(value)) - 3)
    return value - value % step


def histogram(ordered: Iterable[int]) -> Latency:
    """(value, count) pairs of sorted values; coarsened past MAX_BINS (module docstring)."""
    pairs: Latency = list(Counter(ordered).items())  # counted in C, first-seen (sorted) order
    return pairs if len(pairs) <= MAX_BINS else merge_latency([pairs], coarse=True)


def merge_latency(histograms: Iterable[Latency], coarse: bool = False) -> Latency:
    """The sum of ascending histograms, ascending (values coarsened when `coarse` or past
    MAX_BINS).  Linear in the pairs: the inputs are merged, not re-sorted."""
    pairs: Latency = []
    for value, count in heapq.merge(*histograms):
        key = _coarse(value) if coarse else value
        if pairs and pairs[-1][0] == key:
            pairs[-1] = (key, pairs[-1][1] + count)
        else:
            pairs.append((key, count))
    if not coarse and len(pairs) > MAX_BINS:
        return merge_latency([pairs], coarse=True)
    return pairs


def percentiles_of(pairs: Latency, ps: Iterable[float]) -> tuple[float | None, ...]:
    """Nearest-rank percentiles of an ascending histogram, in one pass; None when empty."""
    wanted = list(ps)
    total = sum(count for _, count in pairs)
    if total <= 0:
        return tuple(None for _ in wanted)
    ranks = [min(max(1, math.ceil(p / 100.0 * total)), total) for p in wanted]
    order = sorted(range(len(ranks)), key=ranks.__getitem__)
    out: list[float | None] = [None] * len(ranks)
    seen = 0
    at = 0
    for value, count in pairs:
        seen += count
        while at < len(order) and ranks[order[at]] <= seen:
            out[order[at]] = float(value)
            at += 1
        if at == len(order):
            break
    return tuple(out)


def percentile_of(pairs: Latency, p: float) -> float | None:
    """Nearest-rank percentile of an ascending histogram; None when it is empty."""
    return percentiles_of(pairs, (p,))[0]


class Acc:
    """Count, errors and answered latencies of one bucket or edge.

    Built by `add`; `freeze` sorts the latencies into a compact array, after which the
    record is only read (cached partial aggregates share it between calls)."""

    __slots__ = ("count", "errors", "latencies", "sorted")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.latencies: MutableSequence[int] = []
        self.sorted = False

    def add(self, elapsed: int, answered: int, error: int) -> None:
        self.count += 1
        self.errors += error
        if answered:
            self.latencies.append(elapsed)

    def ordered(self) -> Sequence[int]:
        if not self.sorted:
            self.latencies = sorted(self.latencies)
            self.sorted = True
        return self.latencies

    def freeze(self) -> Acc:
        if not isinstance(self.latencies, array):
            self.latencies = array("q", self.ordered())
        return self

    def nbytes(self) -> int:
        """About what the record holds in memory with its key (for cache bounds)."""
        return 8 * len(self.latencies) + 300


Groups = dict[Any, Acc]
"""Accumulators by key: (bucket index, group) for stats, (source, target, protocol) for edges."""


def bucket_groups(rows: Iterable[BucketRow], bucket_s: float) -> Groups:
    """Rows grouped by time bucket (index = floor(ts / bucket_s)) and group."""
    if not bucket_s > 0 or math.isinf(bucket_s):
        raise ValueError(f"bucket_s must be a positive number of seconds, not {bucket_s!r}")
    floor = math.floor
    return _grouped(rows, lambda row: (floor(row[0] / bucket_s), row[1]))


def edge_groups(rows: Iterable[MapRow]) -> Groups:
    """Rows grouped by edge: (source node key, target node key, protocol)."""
    return _grouped(rows, itemgetter(0, 1, 2))


def _grouped(rows: Iterable[tuple[Any, ...]], key_of: Callable[[Any], Any]) -> Groups:
    """Rows whose last three columns are (elapsed_us, answered, error), by `key_of(row)`."""
    accs: Groups = {}
    for row in rows:
        key = key_of(row)
        acc = accs.get(key)
        if acc is None:
            acc = accs[key] = Acc()
        acc.add(row[-3], row[-2], row[-1])
    return accs


def merge_groups(parts: Sequence[Groups]) -> Groups:
    """The groups of several disjoint row sets as one; the inputs are left as they were."""
    if len(parts) == 1:
        return parts[0]
    runs: dict[Any, list[Acc]] = {}
    for groups in parts:
        for key, acc in groups.items():
            have = runs.get(key)
            if have is None:
                runs[key] = [acc]
            else:
                have.append(acc)
    out: Groups = {}
    for key, accs in runs.items():
        if len(accs) == 1:
            out[key] = accs[0]
            continue
        merged = out[key] = Acc()
        latencies: list[int] = []
        for acc in accs:
            merged.count += acc.count
            merged.errors += acc.errors
            latencies.extend(acc.latencies)
        merged.latencies = latencies  # sorted runs: `ordered` merges them in linear time
    return out


def buckets_of(groups: Groups, bucket_s: float, latency: bool = False) -> list[Bucket]:
    """The stats buckets of grouped rows, in time and group order."""
    out: list[Bucket] = []
    for (index, group), acc in sorted(groups.items(), key=lambda item: item[0]):
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
                latency=histogram(ordered) if latency else None,
            )
        )
    return out


def buckets(rows: Iterable[BucketRow], bucket_s: float, latency: bool = False) -> list[Bucket]:
    """Group rows by time bucket (start = floor(ts / bucket_s) * bucket_s) and group."""
    return buckets_of(bucket_groups(rows, bucket_s), bucket_s, latency)


def node_from_key(key: str) -> MapNode:
    """The node of a key: a service, else a pod, else a name, else the bare address."""
    kind, namespace, name = key.split(_SEP, 2)
    if kind == "address":
        return MapNode(name, name, "", "external")
    node_id = f"{namespace}/{name}" if namespace else name
    return MapNode(node_id, name, namespace, kind)


def map_of(edges: Groups, latency: bool = False) -> ServiceMap:
    """The service map of rows grouped by edge."""
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
                latency=histogram(ordered) if latency else None,
            )
        )
    out_edges.sort(key=lambda e: (e.source, e.target, e.protocol))
    return ServiceMap(nodes=[nodes[k] for k in sorted(nodes)], edges=out_edges)


def service_map(rows: Iterable[MapRow], latency: bool = False) -> ServiceMap:
    """Nodes and edges (source -> target per protocol) with counts, errors, p50/p95."""
    return map_of(edge_groups(rows), latency)
