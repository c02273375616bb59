"""The decoder end to end: frames of every link type in, L4Packet tuples or counted skips out."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture import base
from pilotfish.config import DecodeLimits
from pilotfish.decode.decoder import MAX_TUNNEL_DEPTH, Decoder, DecodeStats

from . import frames as f

BODY = b"GET /api HTTP/1.1\r\n\r\n"
SEG = f.tcp(40000, 80, BODY, seq=11, ack=22, flags=0x18)
WANT4 = (6, f.SRC4, 40000, f.DST4, 80, 11, 22, 0x18, BODY)
WANT6 = (6, f.SRC6, 40000, f.DST6, 80, 11, 22, 0x18, BODY)
LINKTYPES = [0, 1, 101, 108, 113, 228, 229, 276]


def decoder(**limits: float) -> Decoder:
    return Decoder(DecodeLimits(**limits))  # type: ignore[arg-type]


def counted(stats: DecodeStats) -> dict[str, int]:
    return {k: v for k, v in stats.as_dict().items() if v}


@pytest.mark.parametrize(
    ("linktype", "frame", "want"),
    [
        (base.LINKTYPE_ETHERNET, f.ethernet(f.ipv4(SEG)), WANT4),
        (base.LINKTYPE_ETHERNET, f.ethernet(f.ipv6(SEG), 0x86DD), WANT6),
        (base.LINKTYPE_ETHERNET, f.ethernet(f.ipv4(SEG), 0x0800, (0x8100,)), WANT4),
        (base.LINKTYPE_ETHERNET, f.ethernet(f.ipv6(SEG), 0x86DD, (0x88A8, 0x8100)), WANT6),
        (base.LINKTYPE_ETHERNET, f.ethernet(f.ipv4(SEG), 0x0800, (0x9100, 0x9100)), WANT4),
        (base.LINKTYPE_LINUX_SLL, f.sll(f.ipv4(SEG)), WANT4),
        (base.LINKTYPE_LINUX_SLL2, f.sll2(f.ipv6(SEG), 0x86DD), WANT6),
        (base.LINKTYPE_RAW, f.ipv4(SEG), WANT4),
        (base.LINKTYPE_IPV4, f.ipv4(SEG), WANT4),
        (base.LINKTYPE_IPV6, f.ipv6(SEG), WANT6),
        (base.LINKTYPE_NULL, f.null(f.ipv4(SEG), 2, "<"), WANT4),
        (base.LINKTYPE_NULL, f.null(f.ipv6(SEG), 30, "<"), WANT6),
        (base.LINKTYPE_LOOP, f.null(f.ipv6(SEG), 24, ">"), WANT6),
    ],
)
def test_every_link_type(linktype: int, frame: bytes, want: tuple[object, ...]) -> None:
    dec = decoder()
    assert dec.decode(1.0, linktype, frame) == want
    assert counted(dec.stats) == {}


def test_udp_and_options() -> None:
    dec = decoder()
    frame = f.ethernet(f.ipv4(f.udp(5353, 53, b"q"), proto=17, options=b"\x01" * 4))
    assert dec.decode(0.0, 1, frame) == (17, f.SRC4, 5353, f.DST4, 53, 0, 0, 0, b"q")


def test_ethernet_padding_is_trimmed() -> None:
    dec = decoder()
    frame = f.ethernet(f.ipv4(f.tcp(payload=b"")))  # 54 bytes, padded to 60 on the wire
    pkt = dec.decode(0.0, 1, frame + bytes(6))
    assert pkt is not None and pkt[8] == b""
    udp_frame = f.ethernet(f.ipv4(f.udp(payload=b"ab"), proto=17)) + bytes(8)
    pkt = dec.decode(0.0, 1, udp_frame)
    assert pkt is not None and pkt[8] == b"ab"


def test_snaplen_truncation_returns_the_captured_part() -> None:
    dec = decoder()
    frame = f.ethernet(f.ipv4(SEG))
    pkt = dec.decode(0.0, 1, frame[:-5])
    assert pkt is not None and pkt[8] == BODY[:-5]
    pkt = dec.decode(0.0, 1, f.ethernet(f.ipv6(SEG), 0x86DD)[:-5])
    assert pkt is not None and pkt[8] == BODY[:-5]
    udp_frame = f.ethernet(f.ipv4(f.udp(payload=b"abcdef"), proto=17))[:-2]
    pkt = dec.decode(0.0, 1, udp_frame)
    assert pkt is not None and pkt[8] == b"abcd"
    assert counted(dec.stats) == {"truncated": 3}


def test_tso_super_frames_use_the_captured_length() -> None:
    dec = decoder()
    big = f.tcp(payload=b"z" * 70000)
    assert dec.decode(0.0, 1, f.ethernet(f.ipv4(big, total=0)))[8] == b"z" * 70000  # type: ignore[index]
    assert dec.decode(0.0, 1, f.ethernet(f.ipv6(big, length=0), 0x86DD))[8] == b"z" * 70000  # type: ignore[index]
    assert dec.stats.tso == 2


@pytest.mark.parametrize(
    ("frame", "counter"),
    [
        (f.ethernet(bytes(28), 0x0806), "non_ip"),
        (f.ethernet(bytes(46), 0x88CC), "non_ip"),
        (f.null(f.ipv4(SEG), 7), "non_ip"),
        (f.ethernet(f.ipv4(SEG, version=5)), "malformed"),
        (f.ethernet(f.ipv4(SEG, ihl=3)), "malformed"),
        (f.ethernet(f.ipv4(SEG, total=10)), "malformed"),
        (f.ethernet(f.ipv4(SEG)[:15]), "malformed"),
        (f.ethernet(f.ipv4(f.tcp(payload=b"x" * 10, doff=3))), "bad_tcp_offset"),
        (f.ethernet(f.ipv4(f.tcp(payload=b"x" * 10, doff=12))), "bad_tcp_offset"),
        (f.ethernet(f.ipv4(f.tcp()[:12])), "malformed"),
        (f.ethernet(f.ipv4(b"\x08\0\0\0\0\0\0\0", proto=1)), "icmp"),
        (f.ethernet(f.ipv6(b"\x80" + bytes(7), nxt=58), 0x86DD), "icmp"),
        (f.ethernet(f.ipv4(bytes(16), proto=132)), "other_proto"),
        (f.ethernet(f.ipv6(f.ext(50) + bytes(16), nxt=0), 0x86DD), "other_proto"),
        (f.ethernet(f.ipv6(b"", nxt=59), 0x86DD), "other_proto"),
        (f.ethernet(f.ipv6(f.ext(6, 9)[:8] + SEG, nxt=60), 0x86DD), "malformed"),
        (f.ethernet(f.ipv4(SEG), 0x0800, (0x8100,) * 9), "malformed"),
        (f.ethernet(b""), "malformed"),
        (b"\0" * 5, "malformed"),
    ],
)
def test_skipped_frames_are_counted_by_kind(frame: bytes, counter: str) -> None:
    dec = decoder()
    assert dec.decode(0.0, 1, frame) is None
    assert counted(dec.stats) == {counter: 1}


def test_icmp_error_quoting_a_tcp_header_is_not_traffic() -> None:
    dec = decoder()
    quoted = f.ipv4(SEG)[:28]
    unreachable = b"\x03\x03\0\0\0\0\0\0" + quoted
    assert dec.decode(0.0, 1, f.ethernet(f.ipv4(unreachable, proto=1))) is None
    too_big = b"\x02\0\0\0\0\0\x05\xdc" + f.ipv6(SEG)[:48]
    assert dec.decode(0.0, 1, f.ethernet(f.ipv6(too_big, nxt=58), 0x86DD)) is None
    assert counted(dec.stats) == {"icmp": 2}


def test_transport_header_cut_by_snaplen() -> None:
    dec = decoder()
    assert dec.decode(0.0, 1, f.ethernet(f.ipv4(SEG))[:44]) is None
    assert counted(dec.stats) == {"truncated": 1, "malformed": 1}


def test_unknown_linktype_is_counted() -> None:
    dec = decoder()
    assert dec.decode(0.0, 147, f.ethernet(f.ipv4(SEG))) is None
    assert counted(dec.stats) == {"unknown_linktype": 1}


@pytest.mark.parametrize(
    "chain",
    [f.ext(6), f.ext(43) + f.ext(60) + f.ext(6), f.ext(51) + f.ah(6), f.frag6(6, 0, False)],
)
def test_ipv6_extension_headers(chain: bytes) -> None:
    dec = decoder()
    assert dec.decode(0.0, 1, f.ethernet(f.ipv6(chain + SEG, nxt=0), 0x86DD)) == WANT6


@pytest.mark.parametrize("reverse", [False, True])
def test_ipv4_fragments_reassemble(reverse: bool) -> None:
    dec = decoder()
    datagram = f.udp(1000, 2000, bytes(range(200)) * 10)
    frames_ = f.ipv4_fragments(datagram, [8, 1000, 1480])
    if reverse:
        frames_.reverse()
    out = [dec.decode(float(i), 1, fr) for i, fr in enumerate(frames_)]
    assert out[:-1] == [None] * 3
    assert out[-1] == (17, f.SRC4, 1000, f.DST4, 2000, 0, 0, 0, bytes(range(200)) * 10)
    assert (dec.stats.fragments, dec.stats.reassembled, dec.pending_fragments) == (4, 1, 0)


def test_ipv6_fragments_reassemble_with_options_after_the_fragment_header() -> None:
    dec = decoder()
    datagram = f.ext(6) + SEG  # destination options inside the fragmentable part
    frames_ = f.ipv6_fragments(datagram, [16], nxt=60)
    assert dec.decode(0.0, 1, frames_[1]) is None
    assert dec.decode(0.0, 1, frames_[0]) == WANT6
    assert dec.stats.reassembled == 1


def test_duplicated_and_overlapping_fragments() -> None:
    dec = decoder()
    datagram = f.tcp(payload=b"y" * 100)
    first, second = f.ipv4_fragments(datagram, [64], proto=6)
    assert dec.decode(0.0, 1, first) is None
    assert dec.decode(0.0, 1, first) is None
    assert dec.decode(0.0, 1, second) is not None
    assert dec.stats.fragment_duplicates == 1
    overlap = f.ethernet(f.ipv4(datagram[56:], ident=8, offset=56, more=False))
    dec.decode(0.0, 1, f.ethernet(f.ipv4(datagram[:64], ident=8, more=True)))
    assert dec.decode(0.0, 1, overlap) is None
    assert dec.stats.fragment_overlaps == 1


def test_missing_fragment_times_out() -> None:
    dec = decoder(fragment_timeout=5.0)
    first, _second = f.ipv4_fragments(f.udp(payload=bytes(100)), [64])
    assert dec.decode(10.0, 1, first) is None
    dec.expire(14.0)
    assert dec.pending_fragments == 1
    dec.expire(16.0)
    assert (dec.pending_fragments, dec.stats.fragment_timeouts) == (0, 1)


def test_fragments_of_uninteresting_protocols_are_not_held() -> None:
    dec = decoder()
    assert dec.decode(0.0, 1, f.ethernet(f.ipv4(bytes(64), proto=1, more=True))) is None
    assert dec.pending_fragments == 0
    assert dec.stats.icmp == 1


def test_truncated_fragment_is_dropped() -> None:
    dec = decoder()
    frame = f.ethernet(f.ipv4(bytes(64), proto=17, more=True))
    assert dec.decode(0.0, 1, frame[:-4]) is None
    assert (dec.stats.truncated, dec.pending_fragments) == (1, 0)


INNER = f.ethernet(f.ipv4(SEG))


@pytest.mark.parametrize(
    "outer",
    [
        f.ethernet(f.ipv4(f.udp(50000, 4789, f.vxlan(INNER)), proto=17)),
        f.ethernet(f.ipv6(f.udp(50000, 6081, f.geneve(INNER, options=bytes(8))), nxt=17), 0x86DD),
        f.ethernet(f.ipv4(f.udp(50000, 6081, f.geneve(f.ipv4(SEG), 0x0800)), proto=17)),
        f.ethernet(f.ipv4(f.gre(INNER, 0x6558, key=1), proto=47)),
        f.ethernet(f.ipv4(f.gre(f.ipv4(SEG)), proto=47)),
        f.ethernet(f.ipv4(f.ipv4(SEG), proto=4)),
    ],
)
def test_tunnels_return_the_inner_packet(outer: bytes) -> None:
    dec = decoder()
    assert dec.decode(0.0, 1, outer) == WANT4
    assert counted(dec.stats) == {"tunnels": 1}


def test_ipv6_in_ipv4() -> None:
    dec = decoder()
    assert dec.decode(0.0, 1, f.ethernet(f.ipv4(f.ipv6(SEG), proto=41))) == WANT6


def test_tunnel_nesting_is_bounded() -> None:
    frame = INNER
    for _ in range(MAX_TUNNEL_DEPTH):
        frame = f.ethernet(f.ipv4(f.udp(1, 4789, f.vxlan(frame)), proto=17))
    dec = decoder()
    assert dec.decode(0.0, 1, frame) == WANT4
    deeper = f.ethernet(f.ipv4(f.udp(1, 4789, f.vxlan(frame)), proto=17))
    assert dec.decode(0.0, 1, deeper) is None
    assert dec.stats.tunnel_too_deep == 1


def test_not_really_vxlan_stays_udp() -> None:
    dec = decoder()
    frame = f.ethernet(f.ipv4(f.udp(1, 4789, b"hello"), proto=17))
    assert dec.decode(0.0, 1, frame) == (17, f.SRC4, 1, f.DST4, 4789, 0, 0, 0, b"hello")


def test_vxlan_carrying_arp_counts_it() -> None:
    dec = decoder()
    inner = f.ethernet(bytes(28), 0x0806)
    frame = f.ethernet(f.ipv4(f.udp(1, 4789, f.vxlan(inner)), proto=17))
    assert dec.decode(0.0, 1, frame) is None
    assert counted(dec.stats) == {"tunnels": 1, "non_ip": 1}


@given(data=st.binary(max_size=200), linktype=st.sampled_from([*LINKTYPES, 147]))
def test_random_bytes_under_every_linktype_never_raise(data: bytes, linktype: int) -> None:
    dec = decoder()
    pkt = dec.decode(0.0, linktype, data)
    assert pkt is None or pkt[0] in (6, 17)
    assert pkt is not None or sum(dec.stats.as_dict().values()) >= 1


@given(
    prefix=st.sampled_from(
        [f.ethernet(f.ipv4(SEG)), f.ethernet(f.ipv4(f.udp(1, 4789, b""), proto=17))]
    ),
    data=st.binary(min_size=1, max_size=120),
    where=st.integers(14, 70),
)
def test_mutated_frames_never_raise(prefix: bytes, data: bytes, where: int) -> None:
    frame = prefix[:where] + data + prefix[where + len(data) :]
    Decoder(DecodeLimits()).decode(0.0, 1, frame)


def _segment(kind: str, payload: bytes, options: bytes, flags: int, seq: int) -> bytes:
    if kind == "tcp":
        return f.tcp(1, 2, payload, seq=seq, flags=flags, options=options)
    port = 4789 if flags & 1 else 53
    return f.udp(1, port, payload, length=None if flags & 2 else seq & 0xFF)


@given(
    link=st.sampled_from(["ethernet", "vlan", "sll2"]),
    version=st.sampled_from([4, 6]),
    kind=st.sampled_from(["tcp", "udp"]),
    payload=st.binary(max_size=64),
    options=st.sampled_from([b"", b"\x01" * 12]),
    flags=st.integers(0, 255),
    pad=st.integers(0, 10),
    cut=st.integers(0, 8),
    seq=st.integers(0, 2**32 - 1),
)
def test_fast_paths_agree_with_the_general_path(
    link: str,
    version: int,
    kind: str,
    payload: bytes,
    options: bytes,
    flags: int,
    pad: int,
    cut: int,
    seq: int,
) -> None:
    seg = _segment(kind, payload, options, flags, seq)
    proto = 6 if kind == "tcp" else 17
    if version == 4:
        packet = f.ipv4(seg, proto=proto, options=options if flags & 4 else b"")
        ethertype = 0x0800
    else:
        packet = f.ipv6(seg, nxt=proto, length=0 if flags & 8 else None)
        ethertype = 0x86DD
    linktype, frame = {
        "ethernet": (1, f.ethernet(packet, ethertype)),
        "vlan": (1, f.ethernet(packet, ethertype, (0x8100,))),
        "sll2": (276, f.sll2(packet, ethertype)),
    }[link]
    frame = (frame + bytes(pad))[: len(frame) + pad - cut]
    fast, general = Decoder(DecodeLimits()), Decoder(DecodeLimits())
    assert fast.decode(0.0, linktype, frame) == general.decode_general(0.0, linktype, frame)
    assert fast.stats == general.stats


# --- against a real capture and tshark ------------------------------------------------


def _loopback_traffic(count: int) -> None:
    """`count` small TCP messages and `count` UDP datagrams to 127.0.0.1, bounded."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client = socket.create_connection(server.getsockname(), timeout=5)
        conn, _ = server.accept()
        for i in range(count):
            client.sendall(b"ping %d\n" % i)
            conn.recv(100)
            sender.sendto(b"x" * (i + 1), receiver.getsockname())
            receiver.recv(100)
        client.close()
        conn.close()
    finally:
        for s in (server, receiver, sender):
            s.close()


@pytest.mark.integration
@pytest.mark.skipif(not (shutil.which("tcpdump") and shutil.which("tshark")), reason="needs tools")
@pytest.mark.parametrize(
    ("interface", "dlt", "code"),
    [("lo", "EN10MB", 1), ("any", "LINUX_SLL", 113), ("any", "LINUX_SLL2", 276)],
)
def test_real_loopback_capture_matches_tshark(
    tmp_path: Path, interface: str, dlt: str, code: int
) -> None:
    pcap = tmp_path / "lo.pcap"
    dump = subprocess.Popen(
        [
            "tcpdump",
            "-Z",
            "root",
            "--immediate-mode",
            "-s",
            "4096",  # small slots: with the default snap length the ring holds only a few
            "-B",
            "16384",
            "-i",
            interface,
            "-y",
            dlt,
            "-U",
            "-c",
            "200",
            "-w",
            str(pcap),
            "host 127.0.0.1 and (tcp or udp)",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        assert dump.stderr is not None
        for _ in range(5):  # "listening on ..." comes once the capture is armed
            if b"listening on" in dump.stderr.readline():
                break
        _loopback_traffic(15)
        time.sleep(1.0)
    finally:
        dump.terminate()
        dump.wait(timeout=10)
    fields = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            # other programs' loopback traffic may be cut by the snap length: whole frames only
            "-Y",
            "frame.len == frame.cap_len",
            "-T",
            "fields",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.len",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "udp.length",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    expected = []
    for line in fields:
        tsp, tdp, tlen, usp, udp_, ulen = line.split("\t")
        if tsp:
            expected.append((6, int(tsp), int(tdp), int(tlen)))
        else:
            expected.append((17, int(usp), int(udp_), int(ulen) - 8))
    assert len(expected) >= 30
    dec = decoder()
    got = []
    for linktype, data, wire in _read_pcap(pcap):
        assert linktype == code
        if len(data) < wire:
            continue
        pkt = dec.decode(0.0, linktype, data)
        assert pkt is not None
        got.append((pkt[0], pkt[2], pkt[4], len(pkt[8])))
    assert got == expected


def _read_pcap(path: Path) -> list[tuple[int, bytes, int]]:
    """A minimal classic-pcap reader (the real one lives in capture/pcapfile.py)."""
    import struct

    raw = path.read_bytes()
    magic = raw[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack_from(order + "I", raw, 20)[0] & 0x0FFFFFFF
    out, off = [], 24
    while off + 16 <= len(raw):
        caplen, wire = struct.unpack_from(order + "II", raw, off + 8)
        out.append((linktype, raw[off + 16 : off + 16 + caplen], wire))
        off += 16 + caplen
    return out
