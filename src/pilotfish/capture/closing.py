"""The close protocol the ring sources (AF_PACKET, PF_RING) share.

`close()` may come twice, from any thread or a signal handler: it marks the source closing
and wakes a `batches()` waiting in poll().  A running `batches()` then hands over what its
rings still hold and calls `_finish()` as it ends; with none running, `close()` finishes at
once.  `_finish()` takes the final counters (so `stats()` keeps answering after the rings
are gone) and releases the rings, under the lock every ring access takes.
"""

from __future__ import annotations

import threading
from collections.abc import Sized

from pilotfish.capture.base import CaptureStats
from pilotfish.capture.wakeup import Wakeup


class RingClosing:
    """Base of a source with `_rings`, `_collect()` (its counters) and `_release()`."""

    _rings: Sized

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._wakeup = Wakeup()
        self._final: CaptureStats | None = None
        self._iterating = False

    def stats(self) -> CaptureStats:
        with self._lock:
            if self._final is not None:
                return self._final
            return self._collect()

    def close(self) -> None:
        self._closing.set()
        self._wakeup.wake()
        if not self._iterating:
            self._finish()
        # else batches() hands over what the rings hold, then finishes as it ends

    def _finish(self) -> None:
        with self._lock:
            if self._final is None and self._rings:
                self._final = self._collect()
            self._release()

    def _collect(self) -> CaptureStats:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError
