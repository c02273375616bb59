"""Merging workers' aggregates: stats buckets, service maps, metrics and pcap files.

Pure functions over the workers' answers (the pcap merge reads and writes files it is
handed).  Counts and errors add up exactly.  Percentiles are recomputed from the summed
latency histograms the workers send when asked (`latency=1`; see `store.aggregate`), so
they equal what one store holding every entry would answer (exactly, as long as no
histogram had to be coarsened); a bucket or edge only one worker contributes to keeps
that worker's own (exact) percentiles.  One with several contributors, some of which sent
no histogram, has no percentiles rather than guessed ones.

`merge_pcaps` interleaves the workers' pcap files by timestamp (each is already in time
order) into one classic pcap, reading each input in bounded chunks; frames whose link type
differs from the first frame's are skipped and counted, and a damaged input ends that
input (counted) without spoiling the rest.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from pilotfish.capture.base import LINKTYPE_ETHERNET
from pilotfish.capture.pcapfile import PcapFileSource, PcapFormatError, PcapWriter
from pilotfish.model import Frame
from pilotfish.store.aggregate import merge_latency, percentiles_of
from pilotfish.store.base import Bucket, Latency, MapEdge, MapNode, ServiceMap


class _Sum:
    """Counts, errors and latency of one bucket or edge, summed over workers."""

    __slots__ = ("count", "errors", "histograms", "missing", "own", "parts")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.parts = 0
        self.missing = 0  # contributors that sent no histogram
        self.histograms: list[Latency] = []
        self.own: tuple[float | None, ...] = ()

    def add(
        self, count: int, errors: int, latency: Latency | None, own: tuple[float | None, ...]
    ) -> None:
        self.count += count
        self.errors += errors
        self.parts += 1
        self.own = own
        if latency is None:
            self.missing += 1
        else:
            self.histograms.append(latency)

    def latency(self) -> Latency | None:
        if self.missing:
            return None
        return self.histograms[0] if self.parts == 1 else merge_latency(self.histograms)

    def percentiles(self, *ps: float) -> tuple[float | None, ...]:
        if self.parts == 1:  # a lone contributor's own percentiles are exact
            return self.own
        merged = self.latency()
        if merged is None:  # a worker sent percentiles only: they cannot be merged
            return tuple(None for _ in ps)
        return percentiles_of(merged, ps)


def merge_buckets(answers: Iterable[Sequence[Bucket]], latency: bool = False) -> list[Bucket]:
    """One list of buckets, as one store holding every worker's entries would give."""
    sums: dict[tuple[float, str], _Sum] = {}
    for buckets in answers:
        for b in buckets:
            acc = sums.setdefault((b.start, b.group), _Sum())
            acc.add(b.count, b.errors, b.latency, (b.p50_us, b.p95_us, b.p99_us))
    out = []
    for (start, group), acc in sorted(sums.items()):
        p50, p95, p99 = acc.percentiles(50, 95, 99)
        out.append(
            Bucket(
                start=start,
                count=acc.count,
                errors=acc.errors,
                p50_us=p50,
                p95_us=p95,
                p99_us=p99,
                group=group,
                latency=acc.latency() if latency else None,
            )
        )
    return out


def merge_maps(answers: Iterable[ServiceMap], latency: bool = False) -> ServiceMap:
    """One service map: nodes united by id, edges summed per (source, target, protocol)."""
    nodes: dict[str, MapNode] = {}
    sums: dict[tuple[str, str, str], _Sum] = {}
    for smap in answers:
        for node in smap.nodes:
            nodes.setdefault(node.id, node)
        for e in smap.edges:
            acc = sums.setdefault((e.source, e.target, e.protocol), _Sum())
            acc.add(e.count, e.errors, e.latency, (e.p50_us, e.p95_us))
    edges = []
    for (source, target, protocol), acc in sorted(sums.items()):
        p50, p95 = acc.percentiles(50, 95)
        edges.append(
            MapEdge(
                source=source,
                target=target,
                protocol=protocol,
                count=acc.count,
                errors=acc.errors,
                p50_us=p50,
                p95_us=p95,
                latency=acc.latency() if latency else None,
            )
        )
    return ServiceMap(nodes=[nodes[k] for k in sorted(nodes)], edges=edges)


def sum_trees(trees: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Nested counters added leaf by leaf (numbers add; other leaves: the first one seen)."""
    out: dict[str, Any] = {}
    for tree in trees:
        _add_into(out, tree)
    return out


def _add_into(out: dict[str, Any], tree: dict[str, Any]) -> None:
    for key, value in tree.items():
        have = out.get(key)
        if isinstance(value, dict):
            if not isinstance(have, dict):
                have = out[key] = {}
            _add_into(have, value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(have, int | float) and not isinstance(have, bool):
                out[key] = have + value
            elif key not in out:
                out[key] = value
        elif key not in out:
            out[key] = value


def merge_pcaps(paths: Sequence[Path], out: BinaryIO) -> dict[str, int]:
    """Write the frames of every pcap in `paths` to `out` in time order; return counters."""
    counters = {"frames": 0, "skipped_linktype": 0, "damaged_inputs": 0}
    writer: PcapWriter | None = None
    streams = [_frames(path, counters) for path in paths]
    for ts, linktype, data, wirelen in heapq.merge(*streams, key=lambda f: f[0]):
        if writer is None:
            writer = PcapWriter(out, linktype)
        if linktype != writer.linktype:
            counters["skipped_linktype"] += 1
            continue
        writer.write(ts, data, wirelen)
        counters["frames"] += 1
    if writer is None:
        writer = PcapWriter(out, LINKTYPE_ETHERNET)
    writer.close()
    return counters


def _frames(path: Path, counters: dict[str, int]) -> Iterator[Frame]:
    source = PcapFileSource(path)
    try:
        for batch in source.batches():
            yield from batch
    except PcapFormatError:
        counters["damaged_inputs"] += 1
    finally:
        source.close()
