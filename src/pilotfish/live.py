"""The `capture` job: a live source into the pipeline (entries) or into a pcap file (-w).

Stopping: after `count` packets, after `duration` seconds, or when `stop()` is called (the
CLI calls it from SIGINT/SIGTERM).  Stopping closes the source, which ends its `batches()`
promptly even when no traffic arrives, after handing over what it still holds (the frames
that arrived before the stop); the job reads on to that end, then the pipeline is flushed and
every stage's counters are reported.

With `workers > 1`, N processes open the same interfaces in one PACKET_FANOUT group (with -w
each writes its own file, NAME.0.pcap, NAME.1.pcap, ...), so the
kernel splits traffic by flow hash and every flow is seen whole by exactly one process; each
child runs its own pipeline and sends finished entries (JSON) and its counters to the parent.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from pilotfish.capture.base import (
    CaptureOptions,
    CaptureStats,
    RecordSource,
    Source,
    SourceUnavailable,
    choose,
)
from pilotfish.capture.registry import factories
from pilotfish.config import Settings
from pilotfish.model import ENTRY_DECODER, ENTRY_ENCODER, Entry
from pilotfish.pipeline import Pipeline

log = logging.getLogger(__name__)

_LIVE_MAX_DELAY = 1.0  # seconds an entry may be held back to keep timestamp order


@dataclass
class LiveOptions:
    backend: str = "best"
    count: int | None = None  # packets
    duration: float | None = None  # seconds
    write: Path | None = None
    workers: int = 1


@dataclass
class LiveResult:
    backend: str = ""
    declined: list[str] = field(default_factory=list)
    capture: list[CaptureStats] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    packets: int = 0
    error: str | None = None


class Stopper:
    """Stops a running capture from any thread (signal handler, timer, count)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._sources: list[Source] = []
        self._lock = threading.Lock()

    def attach(self, source: Source) -> None:
        with self._lock:
            self._sources.append(source)
            if self._event.is_set():
                source.close()

    def stop(self) -> None:
        with self._lock:
            self._event.set()
            for source in self._sources:
                source.close()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()


def run_capture(
    capture: CaptureOptions,
    options: LiveOptions,
    settings: Settings,
    emit: Callable[[Entry], None],
    stopper: Stopper,
    on_open: Callable[[str, list[SourceUnavailable]], None] | None = None,
) -> LiveResult:
    """Capture until stopped; see the module docstring."""
    if options.workers > 1:
        return _run_fanout(capture, options, settings, emit, stopper, on_open)
    result = LiveResult()
    try:
        choice = choose(factories(), capture, options.backend)
    except SourceUnavailable as exc:
        result.error = str(exc)
        return result
    source = choice.source
    result.backend = source.name
    result.declined = [str(d) for d in choice.declined]
    if on_open is not None:
        on_open(source.name, choice.declined)
    stopper.attach(source)
    timer = _deadline(stopper, options.duration)
    try:
        if options.write is not None:
            result.packets = _to_file(source, options)
        else:
            pipeline = Pipeline(settings, emit, capture=source.name, max_delay=_LIVE_MAX_DELAY)
            result.packets = _to_pipeline(source, pipeline, options)
            result.summary = pipeline.summary()
    finally:
        if timer is not None:
            timer.cancel()
        result.capture.append(source.stats())
        source.close()
    return result


def _deadline(stopper: Stopper, duration: float | None) -> threading.Timer | None:
    if duration is None:
        return None
    timer = threading.Timer(duration, stopper.stop)
    timer.daemon = True
    timer.start()
    return timer


def _to_pipeline(source: Source, pipeline: Pipeline, options: LiveOptions) -> int:
    seen = 0
    for batch in source.batches():
        if options.count is not None and seen + len(batch) >= options.count:
            batch = batch[: options.count - seen]
            pipeline.feed(batch)
            seen += len(batch)
            break
        seen += len(batch)
        pipeline.feed(batch)
        pipeline.advance(time.time())
    pipeline.finish()
    return seen


def _to_file(source: Source, options: LiveOptions) -> int:
    """Write frames to the pcap file until the source ends or `count` frames were taken.

    The file has the link type of the first frame; frames of another link type (interfaces
    of different kinds captured together) are left out and logged.  With no `count`, a
    source that can write records itself (`RecordSource`) does, with no Python object per
    frame."""
    from pilotfish.capture.pcapfile import PcapWriter

    assert options.write is not None
    if options.count is None and isinstance(source, RecordSource):
        linktype = source.record_linktype()
        if linktype is not None:
            with PcapWriter(options.write, linktype, nanosecond=True) as out:
                for records, frames in source.pcap_batches(out.snaplen, True):
                    out.write_records(records, frames)
                return out.frames
    seen = 0
    other = 0
    writer: PcapWriter | None = None
    try:
        for batch in source.batches():
            if options.count is not None:
                batch = batch[: options.count - seen]
            if not batch:
                continue
            if writer is None:
                writer = PcapWriter(options.write, batch[0][1], nanosecond=True)
            try:
                writer.write_frames(batch)
            except ValueError:
                kept = [f for f in batch if f[1] == writer.linktype]
                writer.write_frames(kept)
                other += len(batch) - len(kept)
            seen += len(batch)
            if options.count is not None and seen >= options.count:
                break
    finally:
        if writer is None:  # nothing captured: still leave a valid, empty file
            writer = PcapWriter(options.write, 1, nanosecond=True)
        writer.close()
    if other:
        log.warning("capture: %d frames of another link type left out of %s", other, options.write)
    return seen - other


# --- fanout across processes -----------------------------------------------------------------


def _child(
    capture: CaptureOptions, options: LiveOptions, settings: Settings, conn: Connection
) -> None:
    stopper = Stopper()

    def emit(entry: Entry) -> None:
        conn.send_bytes(b"E" + ENTRY_ENCODER.encode(entry))

    def opened(name: str, declined: list[SourceUnavailable]) -> None:
        conn.send(("open", name, [str(d) for d in declined]))

    signal.signal(signal.SIGTERM, lambda *_: stopper.stop())
    signal.signal(signal.SIGINT, lambda *_: stopper.stop())
    watcher = threading.Thread(target=_watch_parent, args=(conn, stopper), daemon=True)
    watcher.start()
    result = run_capture(capture, replace(options, workers=1), settings, emit, stopper, opened)
    conn.send(("done", result))
    conn.close()


def _watch_parent(conn: Connection, stopper: Stopper) -> None:
    """The parent says stop by sending anything (or by going away)."""
    with contextlib.suppress(EOFError, OSError):
        conn.recv()
    stopper.stop()


def _run_fanout(
    capture: CaptureOptions,
    options: LiveOptions,
    settings: Settings,
    emit: Callable[[Entry], None],
    stopper: Stopper,
    on_open: Callable[[str, list[SourceUnavailable]], None] | None,
) -> LiveResult:
    ctx = mp.get_context("fork")
    group = capture.fanout_group if capture.fanout_group is not None else (os.getpid() & 0xFFFF)
    child_capture = replace(capture, fanout_group=group)
    per_child = None if options.count is None else max(1, options.count // options.workers)
    child_options = replace(options, count=per_child, duration=None)
    conns: list[Connection] = []
    procs = []
    for index in range(options.workers):
        child_options = replace(child_options, write=_worker_file(options.write, index))
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child_capture, child_options, settings, child_end))
        proc.start()
        child_end.close()
        conns.append(parent_end)
        procs.append(proc)
    timer = _deadline(stopper, options.duration)
    stopper_thread = threading.Thread(target=_relay_stop, args=(stopper, conns), daemon=True)
    stopper_thread.start()
    merged = LiveResult()
    results: list[LiveResult] = []
    live = list(conns)
    while live:
        for conn in wait(live):
            assert isinstance(conn, Connection)
            try:
                if conn.poll():
                    raw = conn.recv_bytes()
                else:
                    continue
            except (EOFError, OSError):
                live.remove(conn)
                continue
            if raw[:1] == b"E":
                emit(ENTRY_DECODER.decode(raw[1:]))
                continue
            message = pickle.loads(raw)
            if message[0] == "open" and on_open is not None and not merged.backend:
                merged.backend = message[1]
                merged.declined = message[2]
                on_open(message[1], [])
            elif message[0] == "done":
                results.append(message[1])
                live.remove(conn)
    if timer is not None:
        timer.cancel()
    for proc in procs:
        proc.join(timeout=10)
    for r in results:
        merged.capture.extend(r.capture)
        merged.packets += r.packets
        merged.error = merged.error or r.error
        merged.summary = _add(merged.summary, r.summary)
    merged.summary["workers"] = len(results)
    return merged


def _worker_file(path: Path | None, index: int) -> Path | None:
    """Each fanout worker writes its own file (NAME.0.pcap, NAME.1.pcap, ...); a device
    such as /dev/null is shared."""
    if path is None or (path.exists() and not path.is_file()):
        return path
    return path.with_name(f"{path.stem}.{index}{path.suffix or '.pcap'}")


def _relay_stop(stopper: Stopper, conns: list[Connection]) -> None:
    while not stopper.stopped:
        time.sleep(0.05)
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            conn.send("stop")


def _add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Sum two nested counter dicts."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            out[key] = _add(out.get(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = out.get(key, 0) + value
        else:
            out[key] = value
    return out
