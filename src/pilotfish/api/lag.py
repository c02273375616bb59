"""How late the API's event loop runs, so store questions can give way to live streams.

`LoopLag.watch()` ticks every `LAG_TICK_S`; `late` is how much later than asked the last
tick woke, or half the previous value if that is more (one slow tick counts for a few).
The event loop is late when the process is short of CPU, and then it is the live streams,
which run on the loop, that fall behind: `LocalBackend` makes each store question wait
`late` (at most `MAX_YIELD_S`) while it is above `LAG_S`, and counts those waits in
`yielded`.  Measured in limits (`python -m bench api-capture`, cpu 750m): with 20 live
clients and a back-to-back query loop, the slowest client got 67.5-92.9 % of the entries
before and 96.2-100 % after (three runs), with 216-292 questions answered in 8 s.
"""

from __future__ import annotations

import asyncio
from typing import Final

LAG_S: Final = 0.02
MAX_YIELD_S: Final = 0.25
LAG_TICK_S: Final = 0.05


class LoopLag:
    """The event loop's lateness, watched by a task of its own (`watch`)."""

    def __init__(self, tick_s: float = LAG_TICK_S) -> None:
        self.tick_s = tick_s
        self.late = 0.0
        self.yielded = 0  # store questions that waited for the loop

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.tick_s)
            self.late = max(loop.time() - start - self.tick_s, self.late / 2)
