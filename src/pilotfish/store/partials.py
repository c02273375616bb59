"""Aggregates kept per chunk of row numbers, so that asking again costs only what changed.

A dashboard asks for the same stats and service map every few seconds over up to a million
stored entries; grouping every row again each time costs seconds of CPU.  Rows are only ever
appended (new row numbers) and evicted from the oldest end, never changed, so the grouped
rows (`aggregate.Groups`) of a range of row numbers stay true as long as no row of that range
was evicted.  `collect` splits [oldest, newest] into aligned chunks of `CHUNK` row numbers,
newest first, and for each takes the cached part when it covers the same range, extends a
cached part of the newest chunk with the rows added since, and computes the rest.  The
parts then merge (`aggregate.merge_groups`) into exactly what one pass over the same rows
gives, percentiles included.

Bounds: a part counts the rows that count against the caller's bound (matched rows when the
filter runs in SQL, candidate rows when Python checks them); when the next part would pass
the bound, that chunk is computed again with a limit (its newest rows only) and not cached,
so the answer covers the same newest rows as one bounded pass.  `PartCache` keeps parts
least-recently-used first out, within `max_bytes` (an estimate: 8 bytes per latency plus
300 per group).  A question whose parts would take more than half of that (a service map of
tens of thousands of edges: nearly every chunk holds most of them, and merging them costs
more than one pass) is remembered as refused and answered in one pass from then on, as are
filters that read the clock (`now()`; the caller passes `cacheable=False`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Final

from pilotfish.store.aggregate import Groups, merge_groups

CHUNK: Final = 16_384
MAX_BYTES: Final = 64 << 20
MAX_REFUSED: Final = 256  # questions remembered as too big to cache


@dataclass(frozen=True)
class Part:
    """Grouped rows of the row numbers lo..hi (inclusive) that the filter kept."""

    lo: int
    hi: int
    groups: Groups
    counted: int  # rows counted against the bound

    def nbytes(self) -> int:
        """About what the part holds in memory: its keys, records and latencies."""
        return 200 + sum(acc.nbytes() for acc in self.groups.values())


Compute = Callable[[int, int, int | None], Part]
"""(lo, hi, limit): the part of lo..hi, or of its `limit` newest counted rows."""


def frozen(lo: int, hi: int, groups: Groups, counted: int) -> Part:
    """A part whose groups are sorted and compact, ready to be shared."""
    for acc in groups.values():
        acc.freeze()
    return Part(lo, hi, groups, counted)


class PartCache:
    """Parts by (what was asked, chunk number), least recently used evicted first."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._parts: OrderedDict[Hashable, tuple[Part, int]] = OrderedDict()
        self.bytes = 0
        self.counters = dict.fromkeys(("hits", "extended", "computed", "evicted", "refused"), 0)
        self.refused: set[Hashable] = set()

    def refuse(self, asked: Hashable) -> None:
        """Remember that the parts of `asked` do not fit: answer it in one pass from now on."""
        if len(self.refused) >= MAX_REFUSED:
            self.refused.clear()
        self.refused.add(asked)
        self.counters["refused"] += 1

    def get(self, key: Hashable) -> Part | None:
        found = self._parts.get(key)
        if found is None:
            return None
        self._parts.move_to_end(key)
        return found[0]

    def put(self, key: Hashable, part: Part) -> None:
        size = part.nbytes()
        old = self._parts.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes:
            return
        self._parts[key] = (part, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._parts.popitem(last=False)
            self.bytes -= dropped
            self.counters["evicted"] += 1

    def __len__(self) -> int:
        return len(self._parts)


def collect(
    cache: PartCache,
    asked: Hashable,
    compute: Compute,
    oldest: int,
    newest: int,
    bound: int,
    *,
    cacheable: bool = True,
    chunk: int = CHUNK,
) -> list[Part]:
    """Parts covering the newest rows of oldest..newest, newest first, within `bound`."""
    if newest < oldest:
        return []
    if not cacheable or asked in cache.refused:
        return [compute(oldest, newest, bound)]
    parts: list[Part] = []
    counted = 0
    held = 0  # bytes of this answer's parts
    covered = 0  # row numbers they span
    index = newest // chunk
    while index >= 0 and (index + 1) * chunk > oldest and counted < bound:
        lo, hi = max(index * chunk, oldest), min((index + 1) * chunk - 1, newest)
        part = _chunk_part(cache, (asked, index), compute, lo, hi)
        held += part.nbytes()
        covered += hi - lo + 1
        # judged once a chunk's worth of rows is in: too many groups to keep, one pass is cheaper
        if covered >= chunk and held * (newest - oldest + 1) > cache.max_bytes // 2 * covered:
            cache.refuse(asked)
            return [compute(oldest, newest, bound)]
        if counted + part.counted > bound:
            parts.append(compute(lo, hi, bound - counted))
            break
        parts.append(part)
        counted += part.counted
        index -= 1
    return parts


def _chunk_part(cache: PartCache, key: Hashable, compute: Compute, lo: int, hi: int) -> Part:
    cached = cache.get(key)
    if cached is not None and cached.lo == lo:
        if cached.hi == hi:
            cache.counters["hits"] += 1
            return cached
        if cached.hi < hi:  # the newest chunk grew: group only the rows added since
            cache.counters["extended"] += 1
            added = compute(cached.hi + 1, hi, None)
            part = frozen(
                lo,
                hi,
                merge_groups([cached.groups, added.groups]),
                cached.counted + added.counted,
            )
            cache.put(key, part)
            return part
    cache.counters["computed"] += 1
    part = compute(lo, hi, None)
    cache.put(key, part)
    return part
