"""The terminal side of capture: the stats lines people read."""

from __future__ import annotations

from pilotfish.capture.base import CaptureStats
from pilotfish.clicapture import stats_lines


def test_stats_lines_name_backend_and_every_counter() -> None:
    lines = stats_lines(
        [
            CaptureStats(
                "afpacket",
                received=10,
                dropped=1,
                if_dropped=2,
                bytes=900,
                extra={"kernel_packets": 11},
            )
        ]
    )
    assert lines == [
        "capture afpacket: received=10 dropped=1 if_dropped=2 bytes=900 kernel_packets=11"
    ]
