"""The counters of the flow table and TCP reassembly, one dataclass of plain ints.

The flow table owns one `FlowStats`; every `TcpStream` of that table updates the same object,
which is also where the pending-bytes total (the global out-of-order budget) lives.  Nothing
here is shared between tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class FlowStats:
    """What the flow table saw, dropped and gave up on.  All fields are ints.

    Gauges: `open` (flows tracked now, closed ones excluded) and `pending_bytes` (out-of-order
    bytes buffered across all flows now).  Everything else only grows.
    """

    packets: int = 0  # L4 packets handed to the table
    tcp_packets: int = 0
    udp_packets: int = 0
    other_packets: int = 0  # neither TCP nor UDP: ignored
    flows_opened: int = 0
    closed_fin: int = 0  # both directions finished
    closed_rst: int = 0
    closed_idle: int = 0
    closed_evicted: int = 0  # table full: least recently active flow closed
    closed_end: int = 0  # end of input
    closed_reused: int = 0  # a new SYN replaced a live flow that never finished
    open: int = 0
    delivered_bytes: int = 0  # payload handed to dissectors in stream order (TCP and UDP)
    retransmitted_bytes: int = 0  # payload at or behind the delivered point (already delivered)
    overlap_bytes: int = 0  # out-of-order payload already covered by an earlier buffered segment
    out_of_order: int = 0  # segments buffered because a hole precedes them
    gaps: int = 0  # holes given up on (on_gap calls)
    gap_bytes: int = 0
    ack_gaps: int = 0  # ... of which because the peer acknowledged the missing bytes
    pending_overflows: int = 0  # ... of which because a pending buffer was full
    pending_bytes: int = 0
    bogus_segments: int = 0  # payload or FIN far outside any plausible window: ignored
    bogus_acks: int = 0  # acknowledgements far ahead of anything sent: ignored
    duplicate_syns: int = 0  # a SYN repeating the handshake of the live flow
    data_after_close: int = 0  # payload-carrying packets of flows already closed by FIN/RST
    cut_streams: int = 0  # directions that reached max_stream_bytes
    cut_bytes: int = 0  # payload not delivered because its direction was cut
    udp_empty: int = 0  # empty datagrams: counted, not delivered

    @property
    def flows_closed(self) -> int:
        return (
            self.closed_fin
            + self.closed_rst
            + self.closed_idle
            + self.closed_evicted
            + self.closed_end
            + self.closed_reused
        )

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out["flows_closed"] = self.flows_closed
        return out
