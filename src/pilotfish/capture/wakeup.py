"""A self-pipe: lets `close()` from another thread interrupt a source blocked in poll().

The read end is registered in the source's poller; `wake()` writes one byte (never blocks:
the write end is non-blocking and a full pipe already means "wake up").
"""

from __future__ import annotations

import contextlib
import os


class Wakeup:
    def __init__(self) -> None:
        self._r = -1
        self._w = -1

    def open(self) -> None:
        if self._r < 0:
            self._r, self._w = os.pipe()
            os.set_blocking(self._w, False)

    @property
    def fd(self) -> int:
        """The end to poll for POLLIN, or -1 when not open."""
        return self._r

    def wake(self) -> None:
        if self._w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._w, b"x")

    def release(self) -> None:
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)
        self._r = self._w = -1
