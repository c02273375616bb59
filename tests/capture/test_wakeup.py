"""Wakeup: a poll() blocked on the read end returns as soon as another thread wakes it."""

from __future__ import annotations

import select
import threading

from pilotfish.capture.wakeup import Wakeup


def test_wake_interrupts_poll_from_another_thread() -> None:
    w = Wakeup()
    assert w.fd == -1
    w.open()
    poller = select.poll()
    poller.register(w.fd, select.POLLIN)
    threading.Timer(0.05, w.wake).start()
    assert poller.poll(10_000)  # returns long before the 10 s timeout
    w.release()
    assert w.fd == -1


def test_wake_never_blocks_and_release_is_idempotent() -> None:
    w = Wakeup()
    w.wake()  # not open: nothing happens
    w.open()
    for _ in range(100_000):  # far more than a pipe holds
        w.wake()
    w.release()
    w.release()
