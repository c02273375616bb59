"""The live job's pieces that need no network: stopping, file naming, counter sums."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pilotfish.capture.base import LINKTYPE_ETHERNET, LINKTYPE_RAW
from pilotfish.capture.pcapfile import PcapFileSource
from pilotfish.live import LiveOptions, Stopper, _add, _to_file, _worker_file
from pilotfish.model import Frame


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


class _Batches:
    """Yields fixed batches, as a live source would."""

    name = "batches"

    def __init__(self, batches: list[list[Frame]]) -> None:
        self._batches = batches

    def batches(self) -> Iterator[list[Frame]]:
        yield from self._batches


def _eth(n: int) -> Frame:
    return (1000.0 + n / 8, LINKTYPE_ETHERNET, bytes([n]) * 60, 60)


def test_file_gets_every_frame_of_its_link_type_and_leaves_others_out(tmp_path: Path) -> None:
    raw: Frame = (1000.5, LINKTYPE_RAW, b"\x45" + bytes(27), 28)
    batches = [[_eth(0), _eth(1)], [], [_eth(2), raw, _eth(3)]]
    path = tmp_path / "out.pcap"
    written = _to_file(_Batches(batches), LiveOptions(write=path))  # type: ignore[arg-type]
    source = PcapFileSource(path)
    source.open()
    frames = [f for batch in source.batches() for f in batch]
    source.close()
    assert written == 4
    assert [(f[1], f[2]) for f in frames] == [(LINKTYPE_ETHERNET, _eth(n)[2]) for n in range(4)]
    assert [f[0] for f in frames] == [_eth(n)[0] for n in range(4)]


def test_file_stops_at_the_count(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    batches = [[_eth(n) for n in range(5)], [_eth(n) for n in range(5, 9)]]
    written = _to_file(_Batches(batches), LiveOptions(write=path, count=7))  # type: ignore[arg-type]
    source = PcapFileSource(path)
    source.open()
    assert [len(b) for b in source.batches()] and source.stats().received == 7
    source.close()
    assert written == 7
