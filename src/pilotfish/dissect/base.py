"""The dissector contract: sans-IO protocol parsers, bytes in, exchanges out.

A dissector lives for one connection (or one UDP conversation).  The pipeline feeds it the
reassembled bytes of each direction in order; it returns the `Exchange`s it could complete.
It never touches sockets, clocks or globals: timestamps come in with the data.

When the bytes make no sense for its protocol it raises `DissectError`; the pipeline then
counts the failure and hands the rest of the connection to the plain `tcp`/`udp` fallback.
"""

from __future__ import annotations

from typing import Protocol

from pilotfish.config import DissectLimits
from pilotfish.model import Exchange


class DissectError(Exception):
    """The stream is not (or no longer) parseable by this dissector."""


class Dissector(Protocol):
    """One connection's protocol parser."""

    protocol: str

    def feed(self, direction: int, data: bytes, ts: float) -> list[Exchange]:
        """Consume in-order bytes of `direction` (CLIENT or SERVER) that arrived at `ts`."""
        ...

    def gap(self, direction: int, size: int, ts: float) -> list[Exchange]:
        """`size` bytes of `direction` were lost.  Resynchronise if possible, else raise."""
        ...

    def close(self, ts: float) -> list[Exchange]:
        """The connection ended: flush what is pending (unanswered requests included)."""
        ...

    def pending_since(self) -> float | None:
        """Timestamp of the oldest message not yet returned, or None if nothing is pending."""
        ...


class DissectorFactory(Protocol):
    def __call__(self, limits: DissectLimits) -> Dissector: ...
