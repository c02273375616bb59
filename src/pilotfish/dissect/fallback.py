"""The plain `tcp`/`udp` entry: one exchange per connection or conversation, bytes counted.

Used for flows no dissector recognises and for the rest of a flow whose dissector gave up.
It keeps four numbers and two timestamps per flow and never fails: nothing is buffered,
nothing is parsed.  Lost bytes (`gap`) are counted into the direction's size and mark the
entry "gap".  The exchange is emitted once, at `close()`; a flow that carried no bytes at
all gives nothing.
"""

from __future__ import annotations

from pilotfish.config import DissectLimits
from pilotfish.model import CLIENT, Exchange, Payload


class FallbackDissector:
    """Byte and timing accounting for one TCP connection or UDP conversation."""

    __slots__ = ("_first", "_gap", "_messages", "_sizes", "protocol")

    def __init__(self, limits: DissectLimits | None = None, protocol: str = "tcp") -> None:
        self.protocol = protocol
        self._sizes = [0, 0]
        self._messages = [0, 0]  # segments / datagrams per direction
        self._first: list[float | None] = [None, None]
        self._gap = False

    def feed(self, direction: int, data: bytes, ts: float) -> list[Exchange]:
        self._sizes[direction] += len(data)
        self._messages[direction] += 1
        if self._first[direction] is None:
            self._first[direction] = ts
        return []

    def gap(self, direction: int, size: int, ts: float) -> list[Exchange]:
        self._sizes[direction] += size
        self._gap = True
        if self._first[direction] is None:
            self._first[direction] = ts
        return []

    def close(self, ts: float) -> list[Exchange]:
        client, server = self._first
        if client is None and server is None:
            return []
        sent, received = self._sizes
        unit = "datagrams" if self.protocol == "udp" else "segments"
        request = Payload(size=sent, info={unit: self._messages[CLIENT]})
        response = Payload(size=received, info={unit: self._messages[1]})
        flags = ["gap"] if self._gap else []
        if client is None:
            flags.append("no-request")
        elif server is None:
            flags.append("no-response")
        summary = f"{self.protocol} {sent} B -> {received} B"
        exchange = Exchange(
            self.protocol,
            client,
            server,
            summary=summary,
            request=request if client is not None else None,
            response=response if server is not None else None,
            flags=flags,
        )
        self._first = [None, None]
        self._sizes = [0, 0]
        self._messages = [0, 0]
        self._gap = False
        return [exchange]

    def pending_since(self) -> float | None:
        client, server = self._first
        if client is None:
            return server
        return client if server is None else min(client, server)
