"""The worker's capture side: a live source into the store, the spool and the live feed.

One node's capture runs here, in its own process: every batch of frames is appended to the
raw-packet spool (for PCAP export) and driven through the pipeline; every finished entry is
added to the bounded store and published to the live feed (the API process, which runs apart
at lower priority, serves both).  The store is committed and the spool's open segment
flushed every `COMMIT_INTERVAL_S`, and the live pipeline holds an entry back at most
`LIVE_MAX_DELAY_S` to keep timestamp order, so a SIGKILL loses less than the last second
of entries (plus the capture ring's block timeout, 0.1 s by default).

Entry ids stay unique per node across restarts: a worker opening a data directory that
already holds entries continues numbering after the newest stored id of its node.

Nothing here ever waits on a reader: the store is written in WAL mode (readers never block
the writer), and `publish` must not block (the feed drops and counts when its peer is slow).
A `feed` (`api.feedpipe.FeedSender`) is flushed on every pass of the loop, idle ones too,
and its counters go into the stats file.

Every second the counters of every stage are written atomically to `stats.json` in the data
directory, where the API process reads them for `/metrics`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from pilotfish.capture.base import CaptureOptions, SourceUnavailable, choose
from pilotfish.capture.registry import factories
from pilotfish.config import Settings
from pilotfish.model import Entry
from pilotfish.pipeline import Pipeline, Resolver
from pilotfish.store.spool import PcapSpool
from pilotfish.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.25
LIVE_MAX_DELAY_S = 0.5


class Feed(Protocol):
    """Where finished entries go live (api.feedpipe.FeedSender); never blocks."""

    def publish(self, entry: Entry) -> None: ...

    def flush(self) -> None: ...

    def counters(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class WorkerPaths:
    """Where a worker keeps its state (one directory per worker)."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "entries.db"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    """Replace `path` atomically with `stats` as JSON (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(msgspec.json.encode(stats))
    os.replace(tmp, path)


def read_stats(path: Path) -> dict[str, Any]:
    """The last counters a capture process wrote, or {} when there are none (yet)."""
    try:
        data = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def last_seq(entry_id: str | None, node: str) -> int:
    """The sequence number in `entry_id` when it is one of `node`'s ids ("<node>-<seq>"),
    else 0: a worker restarted on its data directory keeps its entry ids unique."""
    prefix = f"{node}-"
    if entry_id is None or not entry_id.startswith(prefix):
        return 0
    tail = entry_id[len(prefix) :]
    return int(tail) if tail.isdigit() else 0


class CaptureWorker:
    """Capture -> spool + pipeline -> store + live feed, until `stop()`."""

    def __init__(
        self,
        settings: Settings,
        capture: CaptureOptions,
        paths: WorkerPaths,
        backend: str = "best",
        publish: Callable[[Entry], None] | None = None,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.time,
        feed: Feed | None = None,
    ) -> None:
        self.settings = settings
        self.capture = capture
        self.paths = paths
        self.backend = backend
        self._feed = feed
        self._publish = publish if feed is None else feed.publish
        self._resolver = resolver
        self._clock = clock
        self._stopping = False
        self._source: Any = None
        self.declined: list[SourceUnavailable] = []
        self.opened: Callable[[str], None] | None = None  # told the chosen backend's name

    def stop(self) -> None:
        """Ask the capture loop to end (safe from a signal handler or another thread)."""
        self._stopping = True
        if self._source is not None:
            self._source.close()

    def run(self) -> dict[str, Any]:
        """Capture until stopped; returns the final counters.  Raises SourceUnavailable."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        choice = choose(factories(), self.capture, self.backend)
        self._source = source = choice.source
        self.declined = choice.declined
        if self._stopping:
            source.close()
        if self.opened is not None:
            self.opened(source.name)
        store = SqliteStore(self.paths.store, self.settings.storage_limit)
        spool = PcapSpool(self.paths.spool, self.settings.spool_limit)
        publish = self._publish

        def emit(entry: Entry) -> None:
            store.add((entry,))
            if publish is not None:
                publish(entry)

        pipeline = Pipeline(
            self.settings,
            emit,
            capture=source.name,
            resolver=self._resolver,
            max_delay=LIVE_MAX_DELAY_S,
            first_seq=last_seq(store.newest_id(), self.settings.node),
        )
        clock = self._clock
        feed = self._feed
        next_commit = clock() + COMMIT_INTERVAL_S
        stats: dict[str, Any] = {}
        try:
            for batch in source.batches():
                if batch:
                    spool.write(batch)
                    pipeline.feed(batch)
                now = clock()
                pipeline.advance(now)
                if feed is not None:
                    feed.flush()
                if now >= next_commit:
                    store.commit()
                    spool.flush()
                    stats = self._stats(source, pipeline, store, spool)
                    write_stats(self.paths.stats, stats)
                    next_commit = now + COMMIT_INTERVAL_S
                if self._stopping:
                    break
            pipeline.finish()
        finally:
            store.commit()
            stats = self._stats(source, pipeline, store, spool)
            write_stats(self.paths.stats, stats)
            source.close()
            spool.close()
            store.close()
        return stats

    def _stats(
        self, source: Any, pipeline: Pipeline, store: SqliteStore, spool: PcapSpool
    ) -> dict[str, Any]:
        capture = source.stats()
        return {
            "node": self.settings.node,
            "time": self._clock(),
            "capture": {
                "backend": capture.backend,
                "reason": capture.reason,
                "received": capture.received,
                "dropped": capture.dropped,
                "if_dropped": capture.if_dropped,
                "bytes": capture.bytes,
                "declined": [str(d) for d in self.declined],
                "extra": dict(capture.extra),  # backend-specific counters
            },
            "pipeline": pipeline.summary(),
            "open_flows": pipeline.table.stats.open,
            "store": {"bytes": store.size_bytes(), **store.counters()},
            "spool": {"bytes": spool.size_bytes(), **spool.counters()},
            "feed": {} if self._feed is None else self._feed.counters(),
        }
