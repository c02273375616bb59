"""Resource limits for what the testbed runs, as Kubernetes sets them for a container.

`Limits(cpu_millis, memory_bytes)` makes a cgroup in the cgroup-v1 `cpu` and `memory`
hierarchies (CFS quota `cpu_millis`/1000 of a CPU per 100 ms period, like `limits.cpu`;
memory limit like `limits.memory`, enforced by the kernel's OOM killer).  `argv(cmd)`
wraps a command so that it joins the cgroups before it starts (`python -m
pilotfish.testbed.limits DIR... -- CMD`): whatever it forks stays inside.  `usage()` reads
what the kernel counted: CFS periods and how many were throttled, throttled time, peak
memory, and OOM kills.  `close()` removes the cgroups once nothing runs in them.

This machine has cgroup v1; on a cgroup-v2-only machine `Limits` raises
`LimitsUnavailable` with that reason (the benches then run without limits and say so).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path("/sys/fs/cgroup")
PERIOD_US: Final = 100_000
DEFAULT_CPU_MILLIS: Final = 750  # the chart's default `limits.cpu` for hub and worker
DEFAULT_MEMORY_BYTES: Final = 1024**3  # ... and `limits.memory` (1Gi)


class LimitsUnavailable(RuntimeError):
    """No usable cgroup controller here; the message says why."""


@dataclass(frozen=True)
class Usage:
    periods: int  # CFS periods in which the group ran
    throttled: int  # ... of which it hit its quota
    throttled_s: float
    peak_memory: int  # bytes
    oom_kills: int


def _v1_dirs(root: Path) -> tuple[Path, Path]:
    cpu, memory = root / "cpu", root / "memory"
    if not (cpu / "cpu.cfs_quota_us").exists() or not (memory / "memory.limit_in_bytes").exists():
        if (root / "cgroup.controllers").exists():
            raise LimitsUnavailable("cgroup v2 only: the testbed sets limits through v1")
        raise LimitsUnavailable(f"no cgroup-v1 cpu and memory hierarchies under {root}")
    return cpu, memory


class Limits:
    """See the module docstring."""

    def __init__(
        self,
        cpu_millis: int = DEFAULT_CPU_MILLIS,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        root: Path = ROOT,
    ) -> None:
        if cpu_millis < 1 or memory_bytes < 1 << 20:
            raise ValueError("cpu_millis must be >= 1 and memory_bytes >= 1 MiB")
        cpu, memory = _v1_dirs(root)
        name = f"pilotfish-{secrets.token_hex(4)}"
        self.cpu_millis = cpu_millis
        self.memory_bytes = memory_bytes
        self.dirs = (cpu / name, memory / name)
        try:
            for d in self.dirs:
                d.mkdir()
            (self.dirs[0] / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.dirs[0] / "cpu.cfs_quota_us").write_text(str(cpu_millis * PERIOD_US // 1000))
            (self.dirs[1] / "memory.limit_in_bytes").write_text(str(memory_bytes))
        except OSError as exc:
            self.close()
            raise LimitsUnavailable(f"cannot create a cgroup: {exc}") from exc

    def argv(self, cmd: Sequence[str]) -> list[str]:
        """`cmd`, started inside the limits."""
        dirs = [str(d) for d in self.dirs]
        return [sys.executable, "-m", "pilotfish.testbed.limits", *dirs, "--", *cmd]

    def usage(self) -> Usage:
        cpu = _keyed(self.dirs[0] / "cpu.stat")
        oom = _keyed(self.dirs[1] / "memory.oom_control")
        peak = int((self.dirs[1] / "memory.max_usage_in_bytes").read_text())
        return Usage(
            cpu.get("nr_periods", 0),
            cpu.get("nr_throttled", 0),
            cpu.get("throttled_time", 0) / 1e9,
            peak,
            oom.get("oom_kill", 0),
        )

    def close(self, wait_s: float = 5.0) -> None:
        """Remove the cgroups, waiting up to `wait_s` for their last processes to end."""
        deadline = time.monotonic() + wait_s
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy: a process in it is still exiting
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def __enter__(self) -> Limits:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def main(args: Sequence[str]) -> None:
    """Join the cgroup directories before `--`, then exec the command after it."""
    if "--" not in args:
        raise SystemExit("usage: python -m pilotfish.testbed.limits DIR... -- CMD...")
    split = list(args).index("--")
    dirs, cmd = args[:split], list(args[split + 1 :])
    if not cmd:
        raise SystemExit("limits: no command to run")
    for d in dirs:
        Path(d, "cgroup.procs").write_text(str(os.getpid()))
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
