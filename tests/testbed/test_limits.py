"""limits: a command started inside the limits is held to its CPU quota and OOM-killed
past its memory limit, and the kernel's counts come back; the cgroups go afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilotfish.testbed.limits import Limits, LimitsUnavailable, main

SPIN = "import os,time\nt=time.time()\nwhile time.time()-t<1: pass\nprint(sum(os.times()[:2]))"
GROW = "x=bytearray(160*1024*1024)\nx[::4096]=b'1'*len(x[::4096])\nprint('survived')"


def _limits(cpu_millis: int, memory_bytes: int) -> Limits:
    if os.geteuid() != 0:
        pytest.skip("needs root (cgroups)")
    try:
        return Limits(cpu_millis, memory_bytes)
    except LimitsUnavailable as exc:
        pytest.skip(str(exc))


def test_a_busy_command_gets_its_cpu_quota_and_no_more() -> None:
    with _limits(200, 256 * 1024**2) as limits:
        done = subprocess.run(limits.argv([sys.executable, "-c", SPIN]), capture_output=True)
        assert done.returncode == 0, done.stderr
        cpu_s = float(done.stdout)
        usage = limits.usage()
    assert cpu_s < 0.4  # a second of spinning at 200m (plus start-up's slack)
    assert usage.throttled > 0 and usage.throttled_s > 0.3 and usage.oom_kills == 0
    assert not any(d.exists() for d in limits.dirs)


def test_past_its_memory_limit_a_command_is_oom_killed_and_counted() -> None:
    with _limits(1000, 64 * 1024**2) as limits:
        done = subprocess.run(limits.argv([sys.executable, "-c", GROW]), capture_output=True)
        usage = limits.usage()
    assert done.returncode == -9 and b"survived" not in done.stdout
    assert usage.oom_kills == 1 and usage.peak_memory <= 64 * 1024**2


def test_a_machine_without_cgroup_v1_is_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    with pytest.raises(LimitsUnavailable, match="cgroup v2 only"):
        Limits(root=tmp_path)
    with pytest.raises(LimitsUnavailable, match="no cgroup-v1"):
        Limits(root=tmp_path / "nothing")


def test_nonsense_limits_and_usage_errors_are_refused() -> None:
    with pytest.raises(ValueError):
        Limits(cpu_millis=0)
    with pytest.raises(SystemExit, match="usage"):
        main(["/nowhere"])
    with pytest.raises(SystemExit, match="no command"):
        main(["/nowhere", "--"])
