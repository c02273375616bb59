"""Capture filters compiled by libpcap: the programs tcpdump would use, run in user space on
frames of several link types, attached to a real socket, and rewritten for cooked sockets."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture.base import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
)
from pilotfish.capture.bpf import BpfError, BpfProgram, compile_filter

SO_ATTACH_FILTER = 26


def ipv4_udp(sport: int, dport: int, payload: bytes = b"hi") -> bytes:
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    return (
        struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            1,
            0,
            64,
            17,
            0,
            bytes([10, 0, 0, 1]),
            bytes([10, 0, 0, 2]),
        )
        + udp
    )


def ethernet(ip: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip


def sll2(ip: bytes, ifindex: int = 3, pkttype: int = 0) -> bytes:
    return struct.pack(">HHiHBB8s", 0x0800, 0, ifindex, 1, pkttype, 6, b"\x02" * 6) + ip


def test_compiles_what_tcpdump_compiles() -> None:
    program = compile_filter("udp port 9999", LINKTYPE_ETHERNET)
    assert len(program) == len(program.instructions) > 0
    if shutil.which("tcpdump"):
        out = subprocess.run(
            ["tcpdump", "-ddd", "-y", "EN10MB", "udp port 9999"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        expected = [tuple(int(v) for v in line.split()) for line in out[1:] if line.strip()]
        assert program.instructions == expected


def test_tc_bytecode_is_the_count_then_each_instruction() -> None:
    program = compile_filter("udp", LINKTYPE_ETHERNET)
    text = program.tc_bytecode()
    count, *insns = text.split(",")
    assert int(count) == len(program) == len(insns)
    assert [tuple(int(v) for v in i.split()) for i in insns] == program.instructions


def test_syntax_error_carries_libpcap_message() -> None:
    with pytest.raises(BpfError, match="syntax error"):
        compile_filter("udp portt 80", LINKTYPE_ETHERNET)
    assert issubclass(BpfError, ValueError)


def test_filter_not_valid_for_the_link_type() -> None:
    with pytest.raises(BpfError, match="ethernet addresses"):
        compile_filter("ether host 02:02:02:02:02:02", LINKTYPE_RAW)


def test_matches_per_link_type() -> None:
    ip_in = ipv4_udp(1234, 9999)
    ip_out = ipv4_udp(1234, 80)
    for linktype, wrap in (
        (LINKTYPE_ETHERNET, ethernet),
        (LINKTYPE_RAW, lambda ip: ip),
        (LINKTYPE_LINUX_SLL2, sll2),
    ):
        program = compile_filter("udp port 9999", linktype)
        assert program.matches(wrap(ip_in), len(wrap(ip_in)))
        assert not program.matches(wrap(ip_out), len(wrap(ip_out)))


def test_truncated_frames_do_not_match_or_crash() -> None:
    program = compile_filter("udp port 9999", LINKTYPE_ETHERNET)
    frame = ethernet(ipv4_udp(1, 9999))
    ports_end = 14 + 20 + 4
    for cut in range(len(frame)):
        assert program.matches(frame[:cut], len(frame)) is (cut >= ports_end)


def test_wire_length_is_what_len_sees() -> None:
    program = compile_filter("greater 1000", LINKTYPE_ETHERNET)
    frame = ethernet(ipv4_udp(1, 2))
    assert not program.matches(frame, len(frame))
    assert program.matches(frame, 1500)  # captured short, long on the wire


def test_sock_fprog_attaches_to_a_real_socket() -> None:
    for program, arrives in ((BpfProgram.reject_all(), False), (BpfProgram.accept_all(), True)):
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        ):
            rx.bind(("127.0.0.1", 0))
            rx.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program.sock_fprog())
            tx.sendto(b"ping", rx.getsockname())
            rx.settimeout(0.2 if not arrives else 5)
            if arrives:
                assert rx.recv(10) == b"ping"
            else:
                with pytest.raises(TimeoutError):
                    rx.recv(10)


def test_sock_fprog_layout() -> None:
    program = compile_filter("tcp", LINKTYPE_ETHERNET)
    length, _pad, address = struct.unpack("=H6sQ", program.sock_fprog())
    assert length == len(program)
    assert address != 0


def test_cooked_rewrite_maps_header_fields_to_ancillary_loads() -> None:
    program = compile_filter("inbound and udp port 9999", LINKTYPE_LINUX_SLL2)
    cooked = program.for_cooked_socket()
    assert cooked is not None
    ks = [k for code, _, _, k in cooked.instructions if code & 0x07 in (0, 1) and code & 0xE0]
    skf_pkttype, skf_protocol = (-0x1000 + 4) & 0xFFFFFFFF, (-0x1000) & 0xFFFFFFFF
    assert skf_pkttype in ks and skf_protocol in ks
    # every other packet load lost the 20-byte SLL2 header
    original = [
        k for code, _, _, k in program.instructions if code & 0x07 in (0, 1) and code & 0xE0
    ]
    assert [k for k in ks if k < 0x80000000] == [k - 20 for k in original if k >= 20]


def test_cooked_rewrite_declines_link_address_loads() -> None:
    program = BpfProgram([(0x30, 0, 0, 12), (0x06, 0, 0, 0)], linktype=LINKTYPE_LINUX_SLL2)
    assert program.for_cooked_socket() is None
    with pytest.raises(BpfError):
        compile_filter("tcp", LINKTYPE_ETHERNET).for_cooked_socket()


def test_empty_program_is_refused() -> None:
    with pytest.raises(BpfError):
        BpfProgram([])


@given(st.binary(max_size=200), st.integers(0, 70000))
def test_property_any_bytes_are_safe_and_len_filter_is_exact(data: bytes, wirelen: int) -> None:
    program = compile_filter("greater 100", LINKTYPE_ETHERNET)
    assert program.matches(data, wirelen) == (wirelen >= 100)
    assert compile_filter("udp", LINKTYPE_RAW).matches(data, wirelen) in (True, False)


@given(st.integers(1, 65535), st.integers(1, 65535))
def test_property_port_filter_agrees_with_parsing(sport: int, dport: int) -> None:
    frame = ethernet(ipv4_udp(sport, dport))
    program = compile_filter("udp dst port 9999", LINKTYPE_ETHERNET)
    assert program.matches(frame, len(frame)) == (dport == 9999)
