"""The ring sources' shared close protocol, on a source with counters and nothing else."""

from __future__ import annotations

import threading

from pilotfish.capture.base import CaptureStats
from pilotfish.capture.closing import RingClosing


class Rings(RingClosing):
    def __init__(self) -> None:
        super().__init__()
        self._rings = ["ring"]
        self.received = 0
        self.released = 0

    def _collect(self) -> CaptureStats:
        return CaptureStats(backend="test", received=self.received)

    def _release(self) -> None:
        self._rings = []
        self.released += 1


def test_close_keeps_the_last_counters_and_is_safe_twice() -> None:
    source = Rings()
    source.received = 5
    assert source.stats().received == 5
    source.close()
    source.received = 9  # gone with the rings: stats() keeps what close() took
    source.close()
    assert source.stats().received == 5
    assert source._closing.is_set()
    assert source.released == 2 and source._rings == []


def test_close_during_batches_leaves_the_finish_to_them() -> None:
    source = Rings()
    source._iterating = True
    closer = threading.Thread(target=source.close)
    closer.start()
    closer.join(timeout=5)
    assert source._closing.is_set() and source.released == 0  # batches() finishes later
    source._iterating = False
    source._finish()
    assert source.released == 1 and source.stats().received == 0
