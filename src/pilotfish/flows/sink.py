"""What the flow table reports to the stage after it (the dissection pipeline)."""

from __future__ import annotations

from typing import Protocol

from pilotfish.flows.flow import Flow


class FlowSink(Protocol):
    """Callbacks from the flow table, in capture order.

    `direction` is CLIENT (0) or SERVER (1) relative to the flow's client.  `data` is always
    in stream order with no duplicates; a `gap` stands where bytes were lost.  `on_close`
    comes exactly once per flow (FIN/RST from both sides, idle timeout, eviction or end of
    input), after which the flow is forgotten.
    """

    def on_data(self, flow: Flow, direction: int, data: bytes, ts: float) -> None: ...

    def on_gap(self, flow: Flow, direction: int, size: int, ts: float) -> None: ...

    def on_close(self, flow: Flow, ts: float, reason: str) -> None: ...
