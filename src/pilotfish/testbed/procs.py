"""The processes a testbed started, stopped by PID: terminate, wait (bounded), kill.

A `ProcessSet` is owned by one testbed.  It only ever signals processes it started itself
(or PIDs it is explicitly handed, such as the leftovers of a dead testbed's namespace).
Stopping never raises for a process that already exited or vanished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from typing import Final

STOP_GRACE_S: Final = 3.0


class ProcessSet:
    """Tracked child processes, stopped in reverse start order."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def add(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self._procs.append(proc)
        return proc

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def alive(self) -> list[int]:
        return [p.pid for p in self._procs if p.poll() is None]

    def stop(self, proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> int | None:
        """Stop one tracked process; returns its exit code (None if it could not be reaped)."""
        stop_process(proc, grace_s)
        if proc in self._procs:
            self._procs.remove(proc)
        return proc.returncode

    def stop_all(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every live process, wait up to grace_s in total, SIGKILL the rest."""
        procs, self._procs = list(reversed(self._procs)), []
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + grace_s
        for proc in procs:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace_s)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """Terminate one process, wait up to grace_s, then kill it and reap it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)


def kill_pids(pids: Iterable[int], grace_s: float = 1.0) -> None:
    """SIGTERM, then SIGKILL after grace_s, a set of PIDs that are not our children."""
    pending = set(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if pid_alive(pid)}
        time.sleep(0.02)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None
