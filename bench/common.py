"""Measuring whole commands: wall time, CPU seconds and peak RSS of a child process."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
PILOTFISH = [sys.executable, "-m", "pilotfish"]


@dataclass
class Run:
    argv: list[str]
    wall: float
    cpu: float
    max_rss_mb: float
    returncode: int
    stdout_lines: int


def measure(
    argv: Sequence[str],
    count_lines: bool = False,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
) -> Run:
    """Run argv to completion (in `env`, default ours); stdout is discarded (or its lines counted)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE if count_lines else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=None if env is None else dict(env),
    )
    lines = 0
    if count_lines:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
            lines += chunk.count(b"\n")
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
        time.sleep(0.01)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        list(argv),
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        proc.returncode,
        lines,
    )


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = [title, "  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        out.append("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(out)


def wait_for_output(
    proc: subprocess.Popen[bytes] | subprocess.Popen[str], marker: bytes, timeout: float = 20.0
) -> bytes:
    """Read proc's stderr (raw, from its descriptor) until a line containing `marker` is
    complete; returns what was read, for the caller to put in front of the rest."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    head = b""
    deadline = time.monotonic() + timeout
    while marker not in head or not head.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            raise RuntimeError(f"no {marker!r} within {timeout}s: {head.decode(errors='replace')}")
        head += chunk
    return head


def clean_up_to(steps: Sequence[tuple[float, bool]]) -> float | None:
    """The highest rate of the steps (in the order run, rising) before the first unclean one."""
    best: float | None = None
    for rate, clean in steps:
        if not clean:
            break
        best = rate if best is None else max(best, rate)
    return best
