"""The terminal side of `pilotfish capture`: signals, output, the stats report.

Kept apart from cli.py so the argument parsing stays one screen and this part can be tested
on its own.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from pilotfish.capture.base import CaptureOptions, CaptureStats, SourceUnavailable
from pilotfish.capture.registry import probe
from pilotfish.config import Settings
from pilotfish.live import LiveOptions, Stopper, run_capture
from pilotfish.model import Entry
from pilotfish.output import Format, renderer, summary_lines

EXIT_UNAVAILABLE = 2


class Matcher(Protocol):
    def match(self, entry: Entry) -> bool: ...


def list_backends_table(options: CaptureOptions) -> None:
    """Print each backend, whether it works on these interfaces here, and why."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"capture backends on {','.join(options.interfaces)} (best first)")
    table.add_column("backend")
    table.add_column("available")
    table.add_column("reason")
    for name, ok, reason in probe(options):
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", reason)
    Console().print(table)


def stats_lines(stats: list[CaptureStats]) -> list[str]:
    lines = []
    for s in stats:
        extra = " ".join(f"{k}={v}" for k, v in s.extra.items())
        lines.append(
            f"capture {s.backend}: received={s.received} dropped={s.dropped} "
            f"if_dropped={s.if_dropped} bytes={s.bytes}" + (f" {extra}" if extra else "")
        )
    return lines


def _install_signals(stopper: Stopper) -> Callable[[], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stopper.stop()

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)

    return restore


def run_capture_command(
    options: CaptureOptions,
    live: LiveOptions,
    settings: Settings,
    fmt: Format,
    query: object | None,
    quiet: bool,
) -> int:
    """Run the capture to completion; return the process exit code."""
    out = renderer(fmt, sys.stdout.buffer, sys.stdout)
    match = getattr(query, "match", None)

    def emit(entry: Entry) -> None:
        if match is None or match(entry):
            out.write(entry)

    def opened(name: str, declined: list[SourceUnavailable]) -> None:
        if not quiet:
            for d in declined:
                print(f"pilotfish: capture: {d.backend} declined: {d.reason}", file=sys.stderr)
            print(
                f"pilotfish: capture: using {name} on {','.join(options.interfaces)}",
                file=sys.stderr,
            )

    stopper = Stopper()
    restore = _install_signals(stopper)
    try:
        result = run_capture(options, live, settings, emit, stopper, opened)
    finally:
        restore()
        out.close()
    if result.error:
        print(f"pilotfish: capture: {result.error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if not quiet:
        for line in stats_lines(result.capture):
            print(f"pilotfish: {line}", file=sys.stderr)
        if result.summary:
            for line in summary_lines(result.summary):
                print(f"pilotfish: {line}", file=sys.stderr)
        elif live.write is not None:
            print(f"pilotfish: {result.packets} packets written to {live.write}", file=sys.stderr)
    return 0
