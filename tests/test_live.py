"""The live job's pieces that need no network: stopping, file naming, counter sums."""

from __future__ import annotations

from pathlib import Path

from pilotfish.live import Stopper, _add, _worker_file


class _Closable:
    name = "fake"

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_stopper_closes_sources_attached_before_and_after_stop() -> None:
    stopper = Stopper()
    early = _Closable()
    stopper.attach(early)  # type: ignore[arg-type]
    assert not stopper.stopped
    stopper.stop()
    late = _Closable()
    stopper.attach(late)  # type: ignore[arg-type]
    assert stopper.stopped and early.closed == 1 and late.closed == 1


def test_each_fanout_worker_gets_its_own_file_but_devices_are_shared(tmp_path: Path) -> None:
    assert _worker_file(None, 1) is None
    assert _worker_file(Path("/dev/null"), 3) == Path("/dev/null")
    assert _worker_file(tmp_path / "cap.pcap", 0) == tmp_path / "cap.0.pcap"
    assert _worker_file(tmp_path / "cap", 1) == tmp_path / "cap.1.pcap"


def test_counters_of_workers_add_up_nested() -> None:
    a = {"frames": 3, "flows": {"opened": 1}, "name": "x"}
    b = {"frames": 4, "flows": {"opened": 2, "gaps": 1}, "name": "y"}
    assert _add(a, b) == {"frames": 7, "flows": {"opened": 3, "gaps": 1}, "name": "y"}
