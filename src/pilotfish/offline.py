"""The `read` job: a capture file through the pipeline to a renderer, with a run summary.

Input problems are reported, never raised past here: a file that cannot be used at all gives
`ReadResult.error` and nothing else; a file damaged part-way (truncated last record) gives the
entries recovered before the damage *and* the error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pilotfish.capture.base import SourceError
from pilotfish.capture.pcapfile import PcapFileSource
from pilotfish.config import Settings
from pilotfish.model import Entry, Frame
from pilotfish.pipeline import Pipeline, Resolver

if TYPE_CHECKING:
    from pilotfish.capture.bpf import BpfProgram


@dataclass
class ReadResult:
    summary: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    emitted: int = 0


class FilterError(ValueError):
    """The capture filter does not compile (for the link type of some frames)."""


class FrameFilter:
    """A capture filter (tcpdump syntax) applied to frames read from a file, per link type.

    libpcap's compiler (ctypes) is loaded on the first `check`, so reads without a capture
    filter never load it.
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._programs: dict[int, BpfProgram] = {}
        self.rejected = 0

    def check(self, linktype: int) -> None:
        """Compile for `linktype` now (raises FilterError on a bad expression)."""
        if linktype not in self._programs:
            from pilotfish.capture.bpf import BpfError, compile_filter

            try:
                self._programs[linktype] = compile_filter(self.expression, linktype)
            except BpfError as exc:
                raise FilterError(f"invalid capture filter {self.expression!r}: {exc}") from exc

    def apply(self, frames: list[Frame]) -> list[Frame]:
        kept: list[Frame] = []
        for frame in frames:
            program = self._programs.get(frame[1])
            if program is None:
                self.check(frame[1])
                program = self._programs[frame[1]]
            if program.matches(frame[2], frame[3]):
                kept.append(frame)
        self.rejected += len(frames) - len(kept)
        return kept


def read_file(
    path: Path,
    settings: Settings,
    emit: Callable[[Entry], None],
    bpf: str = "",
    match: Callable[[Entry], bool] | None = None,
    resolver: Resolver | None = None,
    tap: Callable[[list[Frame]], None] | None = None,
) -> ReadResult:
    """Run `path` through the pipeline, calling `emit` for each entry `match` accepts
    (and `tap` with every batch of frames the capture filter kept, before the pipeline)."""
    result = ReadResult()

    def deliver(entry: Entry) -> None:
        if match is None or match(entry):
            result.emitted += 1
            emit(entry)

    pipeline = Pipeline(settings, deliver, capture="pcap", resolver=resolver)
    source = PcapFileSource(path)
    frame_filter = FrameFilter(bpf) if bpf else None
    try:
        source.open()
        if frame_filter is not None:
            frame_filter.check(1)  # a syntax error is reported before any output
        for batch in source.batches():
            if frame_filter is not None:
                batch = frame_filter.apply(batch)
            if tap is not None:
                tap(batch)
            pipeline.feed(batch)
    except (SourceError, OSError) as exc:
        result.error = _describe(path, exc)
    except FilterError as exc:
        result.error = str(exc)
    finally:
        source.close()
    pipeline.finish()
    stats = source.stats()
    result.summary = {"capture": {"received": stats.received, "bytes": stats.bytes, **stats.extra}}
    if frame_filter is not None:
        result.summary["capture_filter_rejected"] = frame_filter.rejected
    result.summary.update(pipeline.summary())
    result.summary["emitted"] = result.emitted
    return result


def _describe(path: Path, exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{path}: {exc.strerror}"
    text = str(exc)
    return text if str(path) in text else f"{path}: {text}"
