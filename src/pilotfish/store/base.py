"""The store contract: what a worker keeps and what the API asks of it.

A store is per worker and bounded by `storage_limit` bytes: the oldest entries (and the raw
packets of their flows) are evicted first.  Entries are appended by the capture side and read
by the API side, possibly from another process.

Paging is newest first with opaque cursors: `query(..., before=c)` returns entries older than
the cursor `c`, `after=c` newer ones.  Filters are the query language (`pilotfish.query`);
stores push what they can down to their engine and apply the exact predicate to the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec

from pilotfish.model import Entry


class Page(msgspec.Struct):
    """One page of entries, newest first, with the cursors to continue either way."""

    entries: list[Entry]
    older: str | None = None  # pass as `before` for the next (older) page
    newer: str | None = None  # pass as `after` to get what arrived since
    # Each entry's position in its store (what cursors are made of): `before=str(p + 1)`
    # starts a page at that entry, so a hub merging several stores resumes exactly.
    positions: list[int] = []


Latency = list[tuple[int, int]]
"""A latency histogram: (elapsed_us, count) pairs, ascending (see `aggregate.histogram`)."""


class Bucket(msgspec.Struct):
    """Counts and latency over one time bucket (and one protocol/service group)."""

    start: float
    count: int
    errors: int
    p50_us: float | None
    p95_us: float | None
    p99_us: float | None
    group: str = ""
    latency: Latency | None = None  # only when asked for (a hub merging percentiles)


class MapNode(msgspec.Struct):
    id: str  # "namespace/workload" or the address when unknown
    name: str
    namespace: str = ""
    kind: str = "pod"  # pod | service | external


class MapEdge(msgspec.Struct):
    source: str
    target: str
    protocol: str
    count: int
    errors: int
    p50_us: float | None
    p95_us: float | None
    latency: Latency | None = None  # only when asked for (a hub merging percentiles)


class ServiceMap(msgspec.Struct):
    nodes: list[MapNode]
    edges: list[MapEdge]


class StreamRef(msgspec.Struct, frozen=True):
    """The packets of one flow: its stream id, 5-tuple and time span (for PCAP export)."""

    stream: str
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    transport: str  # "tcp" | "udp"
    first_ts: float
    last_ts: float


class Query(Protocol):
    """What the store needs of a compiled query (see pilotfish.query)."""

    text: str  # the filter as written: with `timeless`, a key for cached aggregates
    timeless: bool  # False when the answer depends on when it is asked (`now()`)

    def match(self, entry: Entry) -> bool: ...

    def sql(self, columns: Any) -> Any: ...


class EntryStore(Protocol):
    def add(self, entries: Sequence[Entry]) -> None:
        """Append entries (buffered; durable after `commit`, at least once a second)."""
        ...

    def commit(self) -> None: ...

    def query(
        self,
        query: Query | None,
        limit: int = 100,
        before: str | None = None,
        after: str | None = None,
    ) -> Page: ...

    def get(self, entry_id: str) -> Entry | None: ...

    def stats(
        self, query: Query | None, bucket_s: float, group_by: str = "", latency: bool = False
    ) -> list[Bucket]: ...

    def servicemap(self, query: Query | None, latency: bool = False) -> ServiceMap: ...

    def streams(self, query: Query | None, limit: int = 10_000) -> list[StreamRef]: ...

    def size_bytes(self) -> int: ...

    def close(self) -> None: ...


class PacketSpool(Protocol):
    """Raw frames kept for PCAP export, in bounded segment files."""

    def write(self, frames: Iterable[tuple[float, int, bytes, int]]) -> None: ...

    def export(self, streams: Sequence[StreamRef], out: Any) -> int:
        """Write the frames of `streams` as one pcap to the binary file `out`; return count."""
        ...

    def size_bytes(self) -> int: ...

    def close(self) -> None: ...
