"""The story of the flow table: packets of many flows in, per-flow ordered callbacks out."""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.config import FlowLimits
from pilotfish.flows.flow import Flow
from pilotfish.flows.table import FlowTable, server_is_destination
from pilotfish.model import (
    CLIENT,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SERVER,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    L4Packet,
)

C_IP = bytes([10, 0, 0, 9])  # higher address: the canonical key puts the server first
S_IP = bytes([10, 0, 0, 2])
CP, SP = 40_000, 80
DATA = TCP_ACK | TCP_PSH
SYN_ACK = TCP_SYN | TCP_ACK
FIN_ACK = TCP_FIN | TCP_ACK


class Recorder:
    """A FlowSink that writes down every callback."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self.closed: dict[int, str] = {}

    def on_data(self, flow: Flow, direction: int, data: bytes, ts: float) -> None:
        assert flow.ident not in self.closed
        self.events.append(("data", flow.ident, direction, data, ts))

    def on_gap(self, flow: Flow, direction: int, size: int, ts: float) -> None:
        assert flow.ident not in self.closed
        self.events.append(("gap", flow.ident, direction, size, ts))

    def on_close(self, flow: Flow, ts: float, reason: str) -> None:
        assert flow.ident not in self.closed, "closed twice"
        self.closed[flow.ident] = reason
        self.events.append(("close", flow.ident, reason, ts))

    def stream(self, ident: int, direction: int) -> bytes:
        return b"".join(
            e[3]  # type: ignore[misc]
            for e in self.events
            if e[0] == "data" and e[1] == ident and e[2] == direction
        )


def tcp(
    fwd: bool, seq: int, ack: int, flags: int, payload: bytes = b"", cport: int = CP
) -> L4Packet:
    """A segment client->server (`fwd`) or server->client."""
    if fwd:
        return (IPPROTO_TCP, C_IP, cport, S_IP, SP, seq, ack, flags, payload)
    return (IPPROTO_TCP, S_IP, SP, C_IP, cport, seq, ack, flags, payload)


def udp(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> L4Packet:
    return (IPPROTO_UDP, src, sport, dst, dport, 0, 0, 0, payload)


def table(**limits: float) -> tuple[FlowTable, Recorder]:
    sink = Recorder()
    return FlowTable(FlowLimits(**limits), sink), sink  # type: ignore[arg-type]


def handshake(
    t: FlowTable, ts: float = 0.0, cisn: int = 100, sisn: int = 5000, cport: int = CP
) -> None:
    t.packet(ts, tcp(True, cisn, 0, TCP_SYN, cport=cport))
    t.packet(ts + 0.001, tcp(False, sisn, cisn + 1, SYN_ACK, cport=cport))
    t.packet(ts + 0.002, tcp(True, cisn + 1, sisn + 1, TCP_ACK, cport=cport))


# --- a whole connection ------------------------------------------------------------------------


def test_full_connection_request_response_and_fin_close() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 101, 5001, DATA, b"GET / HTTP/1.1\r\n\r\n"))
    t.packet(1.1, tcp(False, 5001, 119, DATA, b"HTTP/1.1 200 OK\r\n\r\n"))
    (flow,) = t.open_flows()
    assert flow.key == (C_IP, CP, S_IP, SP, IPPROTO_TCP)
    assert flow.ident == 1 and flow.syn_seen
    assert flow.bytes == [18, 19] and flow.packets == 5
    t.packet(1.2, tcp(True, 119, 5020, FIN_ACK))
    t.packet(1.3, tcp(False, 5020, 120, FIN_ACK))
    assert sink.closed == {1: "fin"}
    assert sink.events[-1] == ("close", 1, "fin", 1.3)
    t.packet(1.4, tcp(True, 120, 5021, TCP_ACK))  # the last ACK: no new flow
    t.packet(1.5, tcp(True, 120, 5021, DATA, b"late"))
    assert sink.stream(1, CLIENT) == b"GET / HTTP/1.1\r\n\r\n"
    assert sink.stream(1, SERVER) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert t.stats.flows_opened == 1 and t.stats.closed_fin == 1 and t.stats.open == 0
    assert t.stats.data_after_close == 1
    assert list(t.open_flows()) == []
    assert t.stats.tcp_packets == 9


def test_fin_waits_for_the_data_before_it() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 106, 5001, FIN_ACK, b"world"))  # "hello" still missing
    t.packet(1.1, tcp(False, 5001, 101, FIN_ACK))  # server acks nothing yet
    assert sink.closed == {}
    t.packet(1.2, tcp(True, 101, 5002, DATA, b"hello"))
    assert sink.closed == {1: "fin"}
    assert sink.stream(1, CLIENT) == b"helloworld"


def test_syn_ack_seen_first_makes_its_receiver_the_client() -> None:
    t, _ = table()
    t.packet(0.0, tcp(False, 5000, 101, SYN_ACK))
    t.packet(0.1, tcp(True, 101, 5001, DATA, b"x"))
    (flow,) = t.open_flows()
    assert flow.key[:2] == (C_IP, CP) and flow.syn_seen
    assert flow.bytes == [1, 0]


def test_both_directions_interleaved_and_reordered() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 104, 5001, DATA, b"DEF"))
    t.packet(1.1, tcp(False, 5004, 101, DATA, b"456"))
    t.packet(1.2, tcp(True, 101, 5001, DATA, b"ABC"))
    t.packet(1.3, tcp(False, 5001, 107, DATA, b"123"))
    assert sink.stream(1, CLIENT) == b"ABCDEF"
    assert sink.stream(1, SERVER) == b"123456"
    assert t.stats.out_of_order == 2 and t.stats.gaps == 0
    assert t.stats.delivered_bytes == 12  # buffered segments count once they are delivered


# --- gaps ----------------------------------------------------------------------------------------


def test_lost_segment_is_given_up_when_the_peer_acks_past_it() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 101, 5001, DATA, b"aaaa"))
    t.packet(1.2, tcp(True, 109, 5001, DATA, b"cccc"))  # 105..108 lost
    t.packet(1.3, tcp(False, 5001, 113, DATA, b"reply"))
    data = [e for e in sink.events if e[0] in ("data", "gap")]
    assert data == [
        ("data", 1, CLIENT, b"aaaa", 1.0),
        ("gap", 1, CLIENT, 4, 1.3),
        ("data", 1, CLIENT, b"cccc", 1.3),
        ("data", 1, SERVER, b"reply", 1.3),
    ]
    assert t.stats.ack_gaps == 1 and t.stats.gap_bytes == 4


def test_lost_request_tail_is_reported_before_the_response() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 101, 5001, DATA, b"GET / HT"))
    t.packet(1.2, tcp(False, 5001, 119, DATA, b"HTTP/1.1 200"))  # acks 10 unseen bytes
    kinds = [(e[0], e[2]) for e in sink.events if e[0] != "close"]
    assert kinds == [("data", CLIENT), ("gap", CLIENT), ("data", SERVER)]


def test_rst_closes_and_flushes_what_was_buffered() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 105, 5001, DATA, b"tail"))
    t.packet(1.1, tcp(False, 5001, 0, TCP_RST))
    assert sink.closed == {1: "rst"}
    assert sink.events[-3:] == [
        ("gap", 1, CLIENT, 4, 1.1),
        ("data", 1, CLIENT, b"tail", 1.1),
        ("close", 1, "rst", 1.1),
    ]
    assert t.stats.pending_bytes == 0 and t.stats.closed_rst == 1


def test_wrap_around_through_the_table() -> None:
    t, sink = table()
    handshake(t, cisn=0xFFFFFFFE, sisn=0xFFFFFFFF)
    t.packet(1.0, tcp(True, 0xFFFFFFFF, 0, DATA, b"ab"))
    t.packet(1.1, tcp(True, 1, 0, DATA, b"cd"))
    t.packet(1.2, tcp(False, 0, 3, DATA, b"ok"))
    assert sink.stream(1, CLIENT) == b"abcd" and sink.stream(1, SERVER) == b"ok"
    assert t.stats.gaps == 0


# --- direction without a handshake -----------------------------------------------------------


@pytest.mark.parametrize(
    ("sport", "dport", "want"),
    [
        (40_000, 80, True),  # well-known destination
        (80, 40_000, False),  # reply seen first
        (51_000, 6379, True),  # common service port above 1024
        (6379, 51_000, False),
        (50_000, 40_000, True),  # neither: the lower port serves
        (40_000, 50_000, False),
        (443, 80, True),  # both well known: the lower port serves
        (7000, 7000, True),  # equal: first sender is the client
    ],
)
def test_server_guess_without_handshake(sport: int, dport: int, want: bool) -> None:
    assert server_is_destination(sport, dport) is want


def test_syn_captured_after_its_syn_ack_joins_the_flow() -> None:
    t, sink = table()
    t.packet(0.0, tcp(False, 5000, 101, SYN_ACK))
    t.packet(0.0, tcp(True, 100, 0, TCP_SYN))
    t.packet(0.1, tcp(True, 101, 5001, DATA, b"hi"))
    assert sink.closed == {} and t.stats.flows_opened == 1
    assert sink.stream(1, CLIENT) == b"hi"


def test_mid_stream_pickup_guesses_direction_and_reassembles() -> None:
    t, sink = table()
    t.packet(1.0, tcp(False, 9000, 300, DATA, b"response..."))
    t.packet(1.1, tcp(True, 300, 9011, DATA, b"next request"))
    (flow,) = t.open_flows()
    assert flow.key[:2] == (C_IP, CP) and not flow.syn_seen
    assert sink.stream(1, SERVER) == b"response..."
    assert sink.stream(1, CLIENT) == b"next request"


# --- port reuse ----------------------------------------------------------------------------------


def test_syn_after_fin_close_starts_a_new_flow() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 101, 5001, FIN_ACK))
    t.packet(1.1, tcp(False, 5001, 102, FIN_ACK))
    handshake(t, ts=2.0, cisn=9_000_000)
    t.packet(2.1, tcp(True, 9_000_001, 5001, DATA, b"again"))
    assert sink.closed == {1: "fin"}
    assert [f.ident for f in t.open_flows()] == [2]
    assert sink.stream(2, CLIENT) == b"again"


def test_new_syn_on_a_half_closed_flow_closes_it() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 101, 5001, FIN_ACK))
    t.packet(2.0, tcp(True, 777, 0, TCP_SYN))
    assert sink.closed == {1: "fin"} and t.stats.open == 1


def test_new_syn_with_another_isn_replaces_a_live_flow() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, tcp(True, 100, 0, TCP_SYN))  # the same SYN again: a retransmission
    assert sink.closed == {} and t.stats.duplicate_syns == 1
    t.packet(2.0, tcp(True, 123_456_789, 0, TCP_SYN))
    assert sink.closed == {1: "reused"} and t.stats.closed_reused == 1
    assert [f.ident for f in t.open_flows()] == [2]


# --- timeouts, caps and the end --------------------------------------------------------------


def test_idle_flows_expire_by_their_own_timeout() -> None:
    t, sink = table(tcp_idle_timeout=100.0, udp_idle_timeout=10.0)
    handshake(t, ts=0.0, cport=1111)
    handshake(t, ts=1.0, cport=2222)
    t.packet(2.0, udp(C_IP, 5353, S_IP, 53, b"q"))
    t.packet(50.0, tcp(True, 101, 5001, TCP_ACK, cport=1111))  # keeps the first one alive
    t.expire(20.0)
    assert sink.closed == {3: "idle"}
    t.expire(101.5)
    assert sink.closed == {3: "idle", 2: "idle"}
    t.expire(150.0)
    assert sink.closed == {3: "idle", 2: "idle", 1: "idle"}
    assert t.stats.closed_idle == 3 and t.stats.open == 0


def test_idle_close_flushes_pending_as_gaps() -> None:
    t, sink = table(tcp_idle_timeout=5.0)
    handshake(t)
    t.packet(1.0, tcp(True, 111, 5001, DATA, b"late"))
    t.expire(10.0)
    assert sink.events[-3:] == [
        ("gap", 1, CLIENT, 10, 10.0),
        ("data", 1, CLIENT, b"late", 10.0),
        ("close", 1, "idle", 10.0),
    ]


def test_table_full_evicts_the_least_recently_active_flow() -> None:
    t, sink = table(max_flows=2)
    handshake(t, ts=0.0, cport=1111)
    t.packet(0.5, udp(C_IP, 5353, S_IP, 53, b"q"))
    t.packet(1.0, tcp(True, 101, 5001, TCP_ACK, cport=1111))  # flow 1 is now the most recent
    handshake(t, ts=2.0, cport=3333)
    assert sink.closed == {2: "evicted"}
    assert t.stats.closed_evicted == 1 and t.stats.open == 2
    assert sorted(f.ident for f in t.open_flows()) == [1, 3]


def test_close_all_ends_everything() -> None:
    t, sink = table()
    handshake(t)
    t.packet(1.0, udp(C_IP, 5353, S_IP, 53, b"q"))
    t.close_all(9.0)
    assert sink.closed == {1: "end", 2: "end"}
    assert t.stats.closed_end == 2 and t.stats.open == 0
    assert t.stats.as_dict()["flows_closed"] == 2


def test_byte_cap_cuts_one_direction_only() -> None:
    t, sink = table(max_stream_bytes=8)
    handshake(t)
    t.packet(1.0, tcp(True, 101, 5001, DATA, b"0123456789"))
    t.packet(1.1, tcp(False, 5001, 111, DATA, b"short"))
    t.packet(1.2, tcp(True, 111, 5006, DATA, b"more"))
    (flow,) = t.open_flows()
    assert flow.bytes == [8, 5]
    assert sink.stream(1, CLIENT) == b"01234567"
    assert t.stats.cut_streams == 1 and t.stats.cut_bytes == 6
    assert t.stats.delivered_bytes == 13  # up to the cap, nothing past it
    t.packet(1.3, tcp(True, 115, 5006, FIN_ACK))
    t.packet(1.4, tcp(False, 5006, 116, FIN_ACK))
    assert sink.closed == {1: "fin"}


# --- UDP and other protocols --------------------------------------------------------------------


def test_udp_conversation_both_directions() -> None:
    t, sink = table()
    t.packet(1.0, udp(S_IP, 53, C_IP, 33_000, b"answer first"))
    t.packet(1.1, udp(C_IP, 33_000, S_IP, 53, b"query"))
    t.packet(1.2, udp(C_IP, 33_000, S_IP, 53, b""))
    (flow,) = t.open_flows()
    assert flow.key == (C_IP, 33_000, S_IP, 53, IPPROTO_UDP)
    assert sink.events == [
        ("data", 1, SERVER, b"answer first", 1.0),
        ("data", 1, CLIENT, b"query", 1.1),
    ]
    assert flow.bytes == [5, 12] and flow.packets == 3
    assert t.stats.udp_empty == 1 and t.stats.udp_packets == 3
    assert t.stats.delivered_bytes == 17


def test_other_protocols_are_counted_and_ignored() -> None:
    t, sink = table()
    t.packet(1.0, (1, C_IP, 0, S_IP, 0, 0, 0, 0, b"ping"))
    assert sink.events == [] and t.stats.other_packets == 1 and t.stats.open == 0


# --- property --------------------------------------------------------------------------------------

addresses = st.sampled_from([C_IP, S_IP, bytes(16), b"\xfe\x80" + bytes(14)])
packets = st.tuples(
    st.sampled_from([IPPROTO_TCP, IPPROTO_UDP]),
    addresses,
    st.sampled_from([80, 40_000, 53]),
    addresses,
    st.sampled_from([80, 40_000, 53]),
    st.one_of(st.integers(0, 0xFFFFFFFF), st.integers(0, 300)),
    st.one_of(st.integers(0, 0xFFFFFFFF), st.integers(0, 300)),
    st.integers(0, 0xFF),
    st.binary(max_size=40),
)


@given(st.lists(st.tuples(st.floats(0, 100), packets), max_size=80), st.integers(1, 4))
def test_property_any_packets_never_raise_and_every_flow_closes_once(
    stream: list[tuple[float, L4Packet]], max_flows: int
) -> None:
    t, sink = table(max_flows=max_flows, max_pending_bytes=50, tcp_idle_timeout=30.0)
    for ts, pkt in sorted(stream, key=lambda item: item[0]):
        t.packet(ts, pkt)
        assert t.stats.open <= max_flows
        t.expire(ts)
    t.close_all(200.0)
    assert t.stats.open == 0 and t.stats.pending_bytes == 0
    assert t.stats.flows_opened == t.stats.flows_closed == len(sink.closed)
    for flow_ident, direction in {(e[1], e[2]) for e in sink.events if e[0] == "data"}:
        assert isinstance(flow_ident, int) and direction in (CLIENT, SERVER)


# --- real traffic ----------------------------------------------------------------------------------

_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBB")


def _read_pcap_tcp(data: bytes) -> list[tuple[float, L4Packet]]:
    """A tiny little-endian pcap reader for Ethernet/IPv4/TCP, just enough for this test."""
    magic, _, _, _, _, _, linktype = _PCAP_HEADER.unpack_from(data, 0)
    assert magic in (0xA1B2C3D4, 0xA1B23C4D) and linktype == 1
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    out: list[tuple[float, L4Packet]] = []
    pos = _PCAP_HEADER.size
    while pos + _PCAP_RECORD.size <= len(data):
        sec, frac, caplen, _ = _PCAP_RECORD.unpack_from(data, pos)
        frame = data[pos + _PCAP_RECORD.size : pos + _PCAP_RECORD.size + caplen]
        pos += _PCAP_RECORD.size + caplen
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        vihl, _, total, _, _, _, proto, _, src, dst = _IPV4.unpack_from(frame, 14)
        if proto != IPPROTO_TCP:
            continue
        ip = frame[14 : 14 + total]
        tcp_at = (vihl & 0x0F) * 4
        sport, dport, seq, ack, offset, flags = _TCP.unpack_from(ip, tcp_at)
        payload = ip[tcp_at + (offset >> 4) * 4 :]
        out.append((sec + frac * scale, (proto, src, sport, dst, dport, seq, ack, flags, payload)))
    return out


def _exchange_over_loopback(port_holder: socket.socket, request: bytes, reply: bytes) -> None:
    """Client sends `request` and half-closes; the server answers `reply` and closes."""

    def serve() -> None:
        conn, _ = port_holder.accept()
        with conn:
            conn.settimeout(10)
            got = bytearray()
            while chunk := conn.recv(65536):
                got += chunk
            assert bytes(got) == request
            conn.sendall(reply)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    with socket.create_connection(port_holder.getsockname(), timeout=10) as client:
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := client.recv(65536):
            received += chunk
    server.join(10)
    assert bytes(received) == reply


def _wait_listening(proc: subprocess.Popen[bytes], deadline: float) -> None:
    assert proc.stderr is not None
    seen = b""
    while b"listening on" not in seen:
        assert time.monotonic() < deadline, f"tcpdump did not start: {seen!r}"
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            line = proc.stderr.readline()
            assert line, f"tcpdump exited: {seen!r}"
            seen += line


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="capturing on lo needs root")
def test_real_loopback_transfer_is_reassembled_exactly(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    request = rng.randbytes(200 * 1024)
    reply = rng.randbytes(50 * 1024)
    pcap = tmp_path / "lo.pcap"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        cmd = ["tcpdump", "-i", "lo", "-n", "-U", "-B", "8192", "-w", str(pcap)]
        proc = subprocess.Popen([*cmd, f"tcp port {port}"], stderr=subprocess.PIPE)
        try:
            _wait_listening(proc, time.monotonic() + 10)
            _exchange_over_loopback(listener, request, reply)
            deadline = time.monotonic() + 10
            while True:  # wait until tcpdump has written both FINs (bounded)
                packets = _read_pcap_tcp(pcap.read_bytes()) if pcap.exists() else []
                fins = sum(1 for _, p in packets if p[7] & TCP_FIN)
                if fins >= 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    packets = _read_pcap_tcp(pcap.read_bytes())
    t, sink = table()
    for ts, pkt in packets:
        t.packet(ts, pkt)
    t.close_all(packets[-1][0] + 1.0)
    assert sink.stream(1, CLIENT) == request
    assert sink.stream(1, SERVER) == reply
    assert sink.closed == {1: "fin"}
    assert t.stats.gaps == 0 and t.stats.flows_opened == 1
