"""The event loop's lateness: measured by ticks, decaying after a slow one."""

from __future__ import annotations

import asyncio
import time

from pilotfish.api.lag import LoopLag


def test_a_blocked_loop_is_seen_late_then_forgotten() -> None:
    async def scenario() -> tuple[float, float, float]:
        lag = LoopLag(tick_s=0.01)
        task = asyncio.get_running_loop().create_task(lag.watch())
        await asyncio.sleep(0.05)
        calm = lag.late
        time.sleep(0.2)  # the loop is held: the next tick wakes about 0.2 s late
        await asyncio.sleep(0.003)  # the overdue tick runs first; the next is 10 ms away
        seen = lag.late
        await asyncio.sleep(0.3)  # calm ticks halve it each time
        task.cancel()
        return calm, seen, lag.late

    calm, seen, after = asyncio.run(scenario())
    assert calm < 0.05
    assert seen >= 0.12
    assert after < 0.01
