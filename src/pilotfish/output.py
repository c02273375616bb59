"""Renderers for entries: JSON lines, one JSON array, or a readable streaming table.

All three stream: an entry is written as soon as it is released, nothing is collected, so
output memory does not grow with the capture.  JSON is produced by msgspec in the exact
Entry schema of DESIGN.md.
"""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING, Literal, Protocol

from pilotfish.model import ENTRY_ENCODER, Endpoint, Entry

Format = Literal["table", "jsonl", "json"]
FORMATS: tuple[Format, ...] = ("table", "jsonl", "json")

if TYPE_CHECKING:
    from rich.text import Text

_FLUSH_BYTES = 1 << 16


class Renderer(Protocol):
    def write(self, entry: Entry) -> None: ...

    def close(self) -> None: ...


class JsonLines:
    """One entry per line, buffered in 64 KiB writes."""

    def __init__(self, out: IO[bytes], line_buffered: bool = False) -> None:
        self._out = out
        self._buf = bytearray()
        self._flush_at = 1 if line_buffered else _FLUSH_BYTES
        self.count = 0

    def write(self, entry: Entry) -> None:
        ENTRY_ENCODER.encode_into(entry, self._buf, len(self._buf))
        self._buf += b"\n"
        self.count += 1
        if len(self._buf) >= self._flush_at:
            self._out.write(self._buf)
            self._out.flush()
            self._buf.clear()

    def close(self) -> None:
        if self._buf:
            self._out.write(self._buf)
            self._buf.clear()
        self._out.flush()


class JsonArray:
    """A single JSON array of entries, still written incrementally."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.count = 0

    def write(self, entry: Entry) -> None:
        self._out.write(b",\n" if self.count else b"[\n")
        self._out.write(ENTRY_ENCODER.encode(entry))
        self.count += 1

    def close(self) -> None:
        self._out.write(b"\n]\n" if self.count else b"[]\n")
        self._out.flush()


def _endpoint(ep: Endpoint) -> str:
    if ep.pod:
        who = f"{ep.namespace}/{ep.pod}"
    elif ep.service:
        who = f"{ep.namespace}/svc/{ep.service}"
    else:
        who = ep.name or ep.ip
    return f"{who}:{ep.port}"


def _elapsed(us: int | None) -> str:
    if us is None:
        return "-"
    if us < 1000:
        return f"{us}µs"
    if us < 1_000_000:
        return f"{us / 1000:.1f}ms"
    return f"{us / 1_000_000:.2f}s"


def _status_style(status: int | str | None) -> str:
    if isinstance(status, int):
        if status >= 500:
            return "bold red"
        if status >= 400:
            return "yellow"
        return "green"
    if status in (None, "", "NOERROR", "ok", 0):
        return "green"
    return "yellow"


class Table:
    """A streaming, aligned table for people: one line per entry, the request last.

    On a terminal lines are cut to its width; into a pipe or file nothing is cut.  rich is
    imported here, not with the module, so the JSON formats never pay for it.
    """

    _HEAD = f"{'TIME':<15} {'PROTO':<9} {'SOURCE':<24} {'DESTINATION':<24} {'STATUS':>8} {'ELAPSED':>9}  REQUEST"

    def __init__(self, out: IO[str], color: bool | None = None, width: int | None = None) -> None:
        from rich.console import Console
        from rich.text import Text

        self._text: type[Text] = Text
        tty = out.isatty() if hasattr(out, "isatty") else False
        self._console = Console(
            file=out,
            force_terminal=color,
            no_color=color is False,
            width=width if width is not None else (None if tty else 100_000),
            highlight=False,
        )
        self.count = 0

    def write(self, entry: Entry) -> None:
        if self.count == 0:
            self._console.print(self._text(self._HEAD, "bold", no_wrap=True, overflow="ellipsis"))
        self.count += 1
        t = time.strftime("%H:%M:%S", time.localtime(entry.timestamp))
        frac = f"{entry.timestamp % 1:.6f}"[1:]
        request = f"{entry.method} {entry.path}".strip() or entry.summary
        status = "" if entry.status is None else str(entry.status)
        line = self._text(no_wrap=True, overflow="ellipsis")
        line.append(f"{t}{frac} ", "dim")
        line.append(f"{entry.protocol:<9} ", "cyan")
        line.append(f"{_endpoint(entry.src)[:24]:<24} ")
        line.append(f"{_endpoint(entry.dst)[:24]:<24} ")
        line.append(f"{status[:8]:>8} ", _status_style(entry.status))
        line.append(f"{_elapsed(entry.elapsed_us):>9}  ")
        line.append(request)
        if entry.flags:
            line.append(" [" + ",".join(entry.flags) + "]", "dim")
        self._console.print(line)

    def close(self) -> None:
        self._console.file.flush()


def renderer(fmt: Format, binary_out: IO[bytes], text_out: IO[str]) -> Renderer:
    """The renderer for `fmt`: JSON goes to the binary stream, the table to the text one."""
    if fmt == "jsonl":
        return JsonLines(binary_out)
    if fmt == "json":
        return JsonArray(binary_out)
    return Table(text_out)


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _nonzero(prefix: str, value: object, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _nonzero(f"{prefix}.{key}" if prefix else str(key), sub, out)
    elif isinstance(value, int | float) and not isinstance(value, bool) and value:
        out.append(f"{prefix}={value}")


def summary_lines(summary: dict[str, object]) -> list[str]:
    """A short human report of a run: totals first, then every non-zero counter."""
    frames = summary.get("frames", 0)
    nbytes = summary.get("bytes", 0)
    flows = summary.get("flows", {})
    entries = summary.get("entries", {})
    opened = flows.get("flows_opened", 0) if isinstance(flows, dict) else 0
    per_proto = (
        ", ".join(f"{k} {v}" for k, v in sorted(entries.items()))
        if isinstance(entries, dict)
        else ""
    )
    total = sum(entries.values()) if isinstance(entries, dict) else 0
    assert isinstance(frames, int) and isinstance(nbytes, int)
    lines = [
        f"{frames} packets, {_human_bytes(nbytes)}, {opened} flows -> {total} entries"
        + (f" ({per_proto})" if per_proto else "")
    ]
    if summary.get("emitted") not in (None, total):
        lines.append(f"{summary['emitted']} entries matched the filter")
    counters: list[str] = []
    for section in (
        "capture",
        "capture_filter_rejected",
        "decode",
        "flows",
        "dissect_errors",
        "dissector_crashes",
        "reorder",
    ):
        if section in summary:
            _nonzero(section, summary[section], counters)
    if counters:
        lines.append("counters: " + " ".join(counters))
    return lines
