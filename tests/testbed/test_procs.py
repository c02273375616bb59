"""procs: tracked processes stop by PID, politely first, forcibly when ignored."""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.testbed.procs import ProcessSet, kill_pids, pid_alive, start_time, stop_process

IGNORE_TERM = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"


def _ignoring_child() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", IGNORE_TERM], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"  # the handler is installed
    return proc


def test_stop_all_terminates_every_process() -> None:
    procs = ProcessSet()
    a = procs.add(subprocess.Popen(["sleep", "60"]))
    b = procs.add(subprocess.Popen(["sleep", "60"]))
    assert sorted(procs.alive()) == sorted([a.pid, b.pid])
    procs.stop_all()
    assert a.returncode == -15 and b.returncode == -15
    assert procs.pids == []


def test_stop_all_kills_a_process_ignoring_sigterm() -> None:
    procs = ProcessSet()
    proc = procs.add(_ignoring_child())
    procs.stop_all(grace_s=0.3)
    assert proc.returncode == -9
    assert not pid_alive(proc.pid)


def test_stop_one_forgets_it_and_tolerates_exited_processes() -> None:
    procs = ProcessSet()
    done = procs.add(subprocess.Popen(["true"]))
    done.wait()
    assert procs.stop(done) == 0
    assert procs.pids == []
    stop_process(done)  # already reaped: a no-op


def test_kill_pids_escalates_for_foreign_processes() -> None:
    proc = _ignoring_child()
    kill_pids([proc.pid], grace_s=0.2)
    assert proc.wait(timeout=5) == -9


def test_pid_helpers_on_self_and_on_a_dead_pid() -> None:
    assert pid_alive(os.getpid())
    assert start_time(os.getpid()) is not None
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not pid_alive(proc.pid)
    assert start_time(proc.pid) is None


@given(st.integers(min_value=4_200_000, max_value=2**31 - 1))
def test_pids_beyond_pid_max_are_never_alive(pid: int) -> None:
    assert not pid_alive(pid)
    assert start_time(pid) is None
    kill_pids([pid], grace_s=0)  # nothing to signal, nothing raised
