"""Merging several workers' pages into one, newest first, with a composite cursor.

Every worker pages its own store by position (`Page.positions`: `before=str(p + 1)`
restarts a page at the entry at position p, `after=str(p)` gives what is newer than it).  A
hub cursor holds one position per worker: `h.<key>-<n>.<key>-<n>...`, where `key` names the
worker (`worker_key(url)`, 8 hex digits) and `n` is the cursor to send it.

`merge_pages` merges the workers' answers by timestamp (ties by worker order, then each
worker's own order) and takes at most `limit` entries.  It never takes an entry while a
worker that may hold more (its page was cut: full, or its scan bound was hit) has nothing
left in its buffer, because that worker's next entry could be newer; so a page may come out
shorter than `limit` (as a single worker's pages may), and each worker's cursor then points
exactly after the last entry taken from it.  Following `older` (or `newer`) therefore
returns every entry once, with none missing, whatever the interleaving.

A worker missing from a cursor (it was unavailable when the cursor was made) starts from
its newest entry when paging older and from its first when paging newer: its entries come
late rather than never.  Workers not asked this time (unavailable now) keep their position
in the cursors, but paging older ends (`older` is None) once every worker that answered is
exhausted, so a client never loops on a dead worker; the hub's notice says the answer is
partial.
Limits: at most `MAX_WORKERS` workers in a cursor; a malformed cursor is a ValueError.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from dataclasses import dataclass, field
from typing import Final

from pilotfish.model import Entry
from pilotfish.store.base import Page

MAX_WORKERS: Final = 256
_PART: Final = r"[0-9a-f]{8}-[0-9]{1,18}"
_CURSOR: Final = re.compile(rf"h(?:\.{_PART}){{0,{MAX_WORKERS}}}")

Cursor = dict[str, int]


def worker_key(url: str) -> str:
    """The short, stable name of a worker in hub cursors."""
    return hashlib.blake2b(url.encode(), digest_size=4).hexdigest()


def encode_cursor(positions: Cursor) -> str:
    return ".".join(["h", *(f"{k}-{n}" for k, n in sorted(positions.items()))])


def decode_cursor(text: str) -> Cursor:
    """The per-worker positions of a hub cursor; ValueError when it is not one."""
    if _CURSOR.fullmatch(text) is None:
        raise ValueError("not a cursor of this hub")
    out: Cursor = {}
    for part in text.split(".")[1:]:
        key, _, n = part.partition("-")
        out[key] = int(n)
    return out


@dataclass
class _Stream:
    """One worker's page, in merge order (newest first, or oldest first going up)."""

    key: str
    order: int
    entries: list[Entry]
    positions: list[int]
    more: bool
    taken: int = 0


@dataclass
class Request:
    """What the hub was asked: the decoded cursors (None when absent) and the page size."""

    limit: int
    before: Cursor | None = None
    after: Cursor | None = None
    keys: list[str] = field(default_factory=list)  # every configured worker, in order

    @property
    def ascending(self) -> bool:
        return self.after is not None and self.before is None

    def cursors_for(self, key: str) -> tuple[str | None, str | None]:
        """(before, after) to send to worker `key`."""
        before = None if self.before is None else self.before.get(key)
        after = None if self.after is None else self.after.get(key)
        if self.ascending and after is None:
            after = 0  # unknown to the cursor: from its first entry
        return (None if before is None else str(before)), (None if after is None else str(after))


def merge_pages(request: Request, pages: dict[str, Page]) -> Page:
    """One page out of the workers' `pages` (keyed by worker key; see module docstring)."""
    streams = [
        _stream(request, key, order, pages[key])
        for order, key in enumerate(request.keys)
        if key in pages
    ]
    entries = _take(streams, request.limit, request.ascending)
    if request.ascending:
        entries.reverse()  # pages are newest first either way
    older: Cursor = {}
    newer: Cursor = {}
    for s in streams:
        page = pages[s.key]
        if request.ascending:
            _ascending_cursors(request, s, page, older, newer)
        else:
            _descending_cursors(s, page, older, newer)
    done = not request.ascending and all(not s.more and s.taken == len(s.entries) for s in streams)
    for key in request.keys:  # not asked this time: keep their place
        before = None if request.before is None else request.before.get(key)
        after = None if request.after is None else request.after.get(key)
        if key in pages:
            continue
        if before is not None:
            older[key] = before
            newer[key] = max(before - 1, 0)
        if after is not None:
            newer[key] = after
            older.setdefault(key, after + 1)
    return Page(
        entries=entries,
        older=None if done else encode_cursor(older),
        newer=encode_cursor(newer),
    )


def _stream(request: Request, key: str, order: int, page: Page) -> _Stream:
    positions = page.positions
    if len(positions) != len(page.entries):
        raise ValueError(
            f"worker {key} sent {len(page.entries)} entries, {len(positions)} positions"
        )
    if not request.ascending:
        return _Stream(key, order, page.entries, positions, page.older is not None)
    newest = positions[0] if positions else (request.after or {}).get(key, 0)
    more = len(page.entries) >= request.limit or _int(page.newer, newest) > newest
    return _Stream(key, order, page.entries[::-1], positions[::-1], more)


def _take(streams: list[_Stream], limit: int, ascending: bool) -> list[Entry]:
    sign = 1.0 if ascending else -1.0
    heap = [(sign * s.entries[0].timestamp, s.order, 0, s) for s in streams if s.entries]
    heapq.heapify(heap)
    out: list[Entry] = []
    while heap and len(out) < limit:
        if any(s.more and s.taken == len(s.entries) for s in streams):
            break  # that worker's next entry could come first
        _, order, i, s = heapq.heappop(heap)
        out.append(s.entries[i])
        s.taken = i + 1
        if s.taken < len(s.entries):
            heapq.heappush(heap, (sign * s.entries[s.taken].timestamp, order, s.taken, s))
    return out


def _descending_cursors(s: _Stream, page: Page, older: Cursor, newer: Cursor) -> None:
    if s.taken < len(s.entries):
        older[s.key] = s.positions[s.taken] + 1
    elif s.more:
        older[s.key] = _int(page.older, 0)
    else:  # exhausted: nothing older is left
        older[s.key] = s.positions[-1] if s.positions else 0
    newer[s.key] = _int(page.newer, 0)


def _ascending_cursors(
    request: Request, s: _Stream, page: Page, older: Cursor, newer: Cursor
) -> None:
    start = (request.after or {}).get(s.key, 0)
    if s.taken == len(s.entries):
        newer[s.key] = max(_int(page.newer, start), start)
    else:
        newer[s.key] = s.positions[s.taken - 1] if s.taken else start
    older[s.key] = s.positions[0] if s.taken else start + 1


def _int(text: str | None, default: int) -> int:
    return int(text) if text is not None and text.isdigit() else default
