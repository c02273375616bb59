"""The per-flow record shared by the flow table and whoever consumes it."""

from __future__ import annotations

from typing import Any

from pilotfish.model import FlowKey


class Flow:
    """One TCP connection or UDP conversation.

    `key` is oriented client -> server.  `ident` is unique within one pipeline run and names
    the flow in entries (`stream`) and in PCAP export.  `state` belongs to the consumer (the
    dissection pipeline keeps its dissector there); the flow table never reads it.
    """

    __slots__ = ("bytes", "first_ts", "ident", "key", "last_ts", "packets", "state", "syn_seen")

    def __init__(self, key: FlowKey, ident: int, ts: float, syn_seen: bool) -> None:
        self.key = key
        self.ident = ident
        self.first_ts = ts
        self.last_ts = ts
        self.packets = 0
        self.bytes = [0, 0]
        self.syn_seen = syn_seen
        self.state: Any = None

    @property
    def proto(self) -> int:
        return self.key[4]

    def __repr__(self) -> str:
        return f"Flow({self.ident}, {self.key!r})"
