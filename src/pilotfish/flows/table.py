"""The flow table: decoded TCP/UDP packets in, per-flow ordered data, gaps and closes out.

Each packet is looked up in one dict per transport keyed by a canonical 4-tuple (the lower
address/port side first); the dict is an OrderedDict kept in order of last activity
(`move_to_end` per packet), so `expire` scans only the flows that are actually idle and the
least recently active flow is found in O(1) when the table is full.

Direction: the sender of a SYN without ACK is the client; if a SYN-ACK comes first its receiver
is the client; with no handshake (mid-stream pickup, and for UDP) the server is the side on a
well-known port (< 1024 or a common service port) when only one side is, otherwise the lower
port, and with equal ports the first sender is the client.

TCP: each direction is a `TcpStream` (see `tcp.py` for reassembly, gaps and byte caps).  A
flow closes with reason "fin" once both directions delivered everything before their FIN,
"rst" on a reset, "idle" after `tcp_idle_timeout` (capture time, checked by `expire`),
"evicted" when `max_flows` is reached (the least recently active flow goes), "end" at
`close_all`, and "reused" when a new SYN (different ISN) arrives for a live flow that never
saw a FIN (a SYN after a FIN closes with "fin").  Closing flushes the buffered data first.
After a FIN/RST close the 4-tuple is remembered for `CLOSED_LINGER` seconds (at most
`max_flows` of them) so late ACKs and retransmissions are dropped (`data_after_close`)
instead of starting a bogus mid-stream flow; a SYN starts a new flow at once.

UDP: every non-empty datagram is delivered as `on_data`; empty ones are counted
(`udp_empty`) and skipped.  Conversations close on `udp_idle_timeout` or at the end.

Limits: `max_flows` live flows (TCP + UDP), plus as many closed 4-tuples; buffered bytes per
`FlowLimits`.  A connection from a socket to itself (same address and port) is seen as one
direction.  Protocols other than TCP and UDP are counted (`other_packets`) and ignored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from functools import partial
from typing import Final, TypeAlias

from pilotfish.config import FlowLimits
from pilotfish.flows.flow import Flow
from pilotfish.flows.sink import FlowSink
from pilotfish.flows.stats import FlowStats
from pilotfish.flows.tcp import TcpStream
from pilotfish.model import (
    CLIENT,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SERVER,
    TCP_ACK,
    TCP_RST,
    TCP_SYN,
    L4Packet,
)

__all__ = ["CLOSED_LINGER", "FlowStats", "FlowTable", "server_is_destination"]

SERVICE_PORTS: Final = frozenset(
    {80, 443, 53, 6379, 5432, 8080, 8443, 9092, 5672, 3306, 27017, 11211, 2379, 9090, 50051}
    | {8000, 8888, 3000, 5000}
)
CLOSED_LINGER: Final = 60.0  # seconds a FIN/RST-closed 4-tuple is remembered (capped by idle)

_Key: TypeAlias = tuple[bytes, int, bytes, int]
_SYN_OR_ACK: Final = TCP_SYN | TCP_ACK
_CLOSE_COUNTERS: Final = {
    "fin": "closed_fin",
    "rst": "closed_rst",
    "idle": "closed_idle",
    "evicted": "closed_evicted",
    "end": "closed_end",
    "reused": "closed_reused",
}


def _is_service(port: int) -> bool:
    return port < 1024 or port in SERVICE_PORTS


def server_is_destination(src_port: int, dst_port: int) -> bool:
    """Guess, without a handshake, whether the receiver of a packet is the server."""
    src_service = _is_service(src_port)
    dst_service = _is_service(dst_port)
    if src_service != dst_service:
        return dst_service
    return dst_port <= src_port


class _TcpFlow(Flow):
    __slots__ = ("client_low", "streams")

    client_low: bool
    streams: tuple[TcpStream, TcpStream]


class _UdpFlow(Flow):
    __slots__ = ("client_low",)

    client_low: bool


class FlowTable:
    """Tracks TCP connections and UDP conversations; reports them to a `FlowSink`."""

    def __init__(self, limits: FlowLimits, sink: FlowSink) -> None:
        self.limits = limits
        self.stats = FlowStats()
        self._sink = sink
        self._tcp: OrderedDict[_Key, _TcpFlow] = OrderedDict()
        self._udp: OrderedDict[_Key, _UdpFlow] = OrderedDict()
        self._closed: OrderedDict[_Key, float] = OrderedDict()  # 4-tuple -> close time
        self._linger = min(CLOSED_LINGER, limits.tcp_idle_timeout)
        self._max_flows = max(1, limits.max_flows)
        self._next_ident = 1

    # --- input -----------------------------------------------------------------------------

    def packet(self, ts: float, pkt: L4Packet) -> None:
        """One decoded packet, in capture order."""
        proto, src, sport, dst, dport, seq, ack, flags, payload = pkt
        stats = self.stats
        stats.packets += 1
        low = src < dst or (src == dst and sport <= dport)
        key = (src, sport, dst, dport) if low else (dst, dport, src, sport)
        if proto != IPPROTO_TCP:
            if proto == IPPROTO_UDP:
                stats.udp_packets += 1
                self._udp_packet(ts, key, low, sport, dport, payload)
            else:
                stats.other_packets += 1
            return
        stats.tcp_packets += 1
        flow = self._tcp.get(key)
        if flow is None or flags & TCP_SYN:
            flow = self._tcp_flow(ts, key, low, sport, dport, seq, flags, payload, flow)
            if flow is None:
                return
        else:
            self._tcp.move_to_end(key)
        flow.last_ts = ts
        flow.packets += 1
        streams = flow.streams
        if low == flow.client_low:
            sender, receiver = streams
        else:
            receiver, sender = streams
        if flags & TCP_ACK:
            # Before this side's data: a request's lost tail is reported before the response.
            receiver.acked(ack, ts)
        sender.segment(seq, flags, payload, ts)
        if flags & TCP_RST:
            self._close(flow, key, ts, "rst")
        elif (
            sender.fin_offset is not None
            and receiver.fin_offset is not None
            and sender.finished
            and receiver.finished
        ):
            self._close(flow, key, ts, "fin")

    def expire(self, now: float) -> None:
        """Close flows idle longer than their timeout at capture time `now`."""
        self._expire(self._tcp, now - self.limits.tcp_idle_timeout, now)
        self._expire(self._udp, now - self.limits.udp_idle_timeout, now)
        closed = self._closed
        cutoff = now - self._linger
        while closed:
            key, when = next(iter(closed.items()))
            if when > cutoff:
                break
            del closed[key]

    def close_all(self, ts: float) -> None:
        """End of input: close every flow with reason "end"."""
        for table in (self._tcp, self._udp):
            while table:
                key, flow = next(iter(table.items()))
                self._close(flow, key, ts, "end")
        self._closed.clear()

    def open_flows(self) -> Iterable[Flow]:
        """The flows tracked now (a snapshot; closed flows are not included)."""
        return [*self._tcp.values(), *self._udp.values()]

    # --- TCP -------------------------------------------------------------------------------

    def _tcp_flow(
        self,
        ts: float,
        key: _Key,
        low: bool,
        sport: int,
        dport: int,
        seq: int,
        flags: int,
        payload: bytes,
        flow: _TcpFlow | None,
    ) -> _TcpFlow | None:
        """The flow a packet with SYN, or of an unknown 4-tuple, belongs to (None: drop it)."""
        syn_only = flags & _SYN_OR_ACK == TCP_SYN
        if flow is not None:
            if syn_only and self._starts_new_connection(flow, low, seq):
                fin = flow.streams[0].fin_offset is not None or (
                    flow.streams[1].fin_offset is not None
                )
                self._close(flow, key, ts, "fin" if fin else "reused")
            else:
                self._tcp.move_to_end(key)
                return flow
        closed = self._closed
        if key in closed:
            if not syn_only:
                if payload:
                    self.stats.data_after_close += 1
                return None
            del closed[key]
        return self._open_tcp(ts, key, low, sport, dport, flags)

    def _starts_new_connection(self, flow: _TcpFlow, low: bool, seq: int) -> bool:
        streams = flow.streams
        if streams[0].fin_offset is not None or streams[1].fin_offset is not None:
            return True
        sender = streams[CLIENT if low == flow.client_low else SERVER]
        if not sender.started:
            return False  # a SYN captured after its SYN-ACK, or the first word of a silent side
        if sender.syn_isn == seq:
            self.stats.duplicate_syns += 1
            return False
        return True

    def _open_tcp(
        self, ts: float, key: _Key, low: bool, sport: int, dport: int, flags: int
    ) -> _TcpFlow:
        if flags & TCP_SYN:
            sender_is_client = not flags & TCP_ACK
        else:
            sender_is_client = server_is_destination(sport, dport)
        client_low = low == sender_is_client
        flow = _TcpFlow(self._flow_key(key, client_low, IPPROTO_TCP), 0, ts, bool(flags & TCP_SYN))
        flow.client_low = client_low
        sink = self._sink
        limits = self.limits
        stats = self.stats
        flow.streams = (
            TcpStream(
                limits,
                stats,
                partial(sink.on_data, flow, CLIENT),
                partial(sink.on_gap, flow, CLIENT),
                flow.bytes,
                CLIENT,
            ),
            TcpStream(
                limits,
                stats,
                partial(sink.on_data, flow, SERVER),
                partial(sink.on_gap, flow, SERVER),
                flow.bytes,
                SERVER,
            ),
        )
        self._register(flow, ts)
        self._tcp[key] = flow
        return flow

    # --- UDP -------------------------------------------------------------------------------

    def _udp_packet(
        self, ts: float, key: _Key, low: bool, sport: int, dport: int, payload: bytes
    ) -> None:
        flow = self._udp.get(key)
        if flow is None:
            client_low = low == server_is_destination(sport, dport)
            flow = _UdpFlow(self._flow_key(key, client_low, IPPROTO_UDP), 0, ts, False)
            flow.client_low = client_low
            self._register(flow, ts)
            self._udp[key] = flow
        else:
            self._udp.move_to_end(key)
        flow.last_ts = ts
        flow.packets += 1
        if not payload:
            self.stats.udp_empty += 1
            return
        direction = CLIENT if low == flow.client_low else SERVER
        flow.bytes[direction] += len(payload)
        self.stats.delivered_bytes += len(payload)
        self._sink.on_data(flow, direction, payload, ts)

    # --- lifecycle -------------------------------------------------------------------------

    @staticmethod
    def _flow_key(key: _Key, client_low: bool, proto: int) -> tuple[bytes, int, bytes, int, int]:
        if client_low:
            return (key[0], key[1], key[2], key[3], proto)
        return (key[2], key[3], key[0], key[1], proto)

    def _register(self, flow: Flow, ts: float) -> None:
        """Give a new flow its ident, making room first when the table is full."""
        tcp = self._tcp
        udp = self._udp
        while len(tcp) + len(udp) >= self._max_flows:
            oldest_tcp = next(iter(tcp.items()), None)
            oldest_udp = next(iter(udp.items()), None)
            victim: tuple[_Key, Flow]
            if oldest_tcp is None or (
                oldest_udp is not None and oldest_udp[1].last_ts < oldest_tcp[1].last_ts
            ):
                assert oldest_udp is not None  # the loop runs only while a table is non-empty
                victim = oldest_udp
            else:
                victim = oldest_tcp
            self._close(victim[1], victim[0], ts, "evicted")
        flow.ident = self._next_ident
        self._next_ident += 1
        self.stats.flows_opened += 1
        self.stats.open += 1

    def _expire(
        self,
        table: OrderedDict[_Key, _TcpFlow] | OrderedDict[_Key, _UdpFlow],
        cutoff: float,
        now: float,
    ) -> None:
        while table:
            key, flow = next(iter(table.items()))
            if flow.last_ts > cutoff:
                break
            self._close(flow, key, now, "idle")

    def _close(self, flow: Flow, key: _Key, ts: float, reason: str) -> None:
        stats = self.stats
        if isinstance(flow, _TcpFlow):
            del self._tcp[key]
            for stream in flow.streams:
                stream.finish(ts)
            if reason in ("fin", "rst"):
                closed = self._closed
                closed[key] = ts
                closed.move_to_end(key)
                if len(closed) > self._max_flows:
                    closed.popitem(last=False)
        else:
            del self._udp[key]
        stats.open -= 1
        counter = _CLOSE_COUNTERS[reason]
        setattr(stats, counter, getattr(stats, counter) + 1)
        self._sink.on_close(flow, ts, reason)
