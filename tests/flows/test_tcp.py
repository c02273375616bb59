"""The story of one TCP direction: ordered bytes out of segments that arrive any which way."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.config import FlowLimits
from pilotfish.flows.stats import FlowStats
from pilotfish.flows.tcp import BOGUS_DISTANCE, SEQ_MASK, TcpStream, seq_delta
from pilotfish.model import TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN

DATA = TCP_ACK | TCP_PSH


class Out:
    """Collects what a stream pushes out, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes | int, float]] = []

    def data(self, data: bytes, ts: float) -> None:
        assert isinstance(data, bytes) and data
        self.events.append(("data", data, ts))

    def gap(self, size: int, ts: float) -> None:
        assert size > 0
        self.events.append(("gap", size, ts))

    @property
    def joined(self) -> bytes:
        return b"".join(e[1] for e in self.events if isinstance(e[1], bytes))

    def replay(self, filler: bytes = b"?") -> bytes:
        """The stream as delivered, with gaps filled by `filler` bytes."""
        return b"".join(e[1] if isinstance(e[1], bytes) else filler * e[1] for e in self.events)


def make(
    limits: FlowLimits | None = None, stats: FlowStats | None = None
) -> tuple[TcpStream, Out, FlowStats, list[int]]:
    out = Out()
    stats = stats if stats is not None else FlowStats()
    counts = [0, 0]
    stream = TcpStream(limits or FlowLimits(), stats, out.data, out.gap, counts, 1)
    return stream, out, stats, counts


def started(isn: int = 1000, **kw: object) -> tuple[TcpStream, Out, FlowStats, list[int]]:
    """A stream whose SYN (sequence `isn`) was seen: data starts at isn + 1."""
    made = make(**kw)  # type: ignore[arg-type]
    made[0].segment(isn, TCP_SYN, b"", 0.0)
    return made


# --- sequence arithmetic -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [(5, 3, 2), (3, 5, -2), (2, SEQ_MASK, 3), (SEQ_MASK, 2, -3), (0, 1 << 31, -(1 << 31))],
)
def test_seq_delta_is_signed_modular(a: int, b: int, want: int) -> None:
    assert seq_delta(a, b) == want


# --- normal cases --------------------------------------------------------------------------


def test_in_order_data_is_delivered_at_once_with_its_timestamp() -> None:
    stream, out, stats, counts = started()
    stream.segment(1001, DATA, b"hello ", 1.0)
    stream.segment(1007, DATA, b"world", 2.0)
    assert out.events == [("data", b"hello ", 1.0), ("data", b"world", 2.0)]
    assert counts == [0, 11]
    assert stream.next_seq == 1012
    assert stats.out_of_order == 0 and stats.gaps == 0


def test_syn_data_starts_after_the_isn() -> None:
    stream, out, _, _ = make()
    stream.segment(500, TCP_SYN, b"fast-open", 1.0)
    stream.segment(510, DATA, b"!", 2.0)
    assert out.joined == b"fast-open!"
    assert stream.syn_isn == 500


def test_mid_stream_pickup_starts_at_first_segment() -> None:
    stream, out, _, _ = make()
    stream.segment(77_777, DATA, b"middle", 1.0)
    stream.segment(77_783, DATA, b"-end", 1.1)
    assert out.joined == b"middle-end"
    assert stream.syn_isn is None


def test_reordered_segments_wait_for_the_hole_and_take_the_filler_timestamp() -> None:
    stream, out, stats, _ = started()
    stream.segment(1006, DATA, b"world", 1.0)
    stream.segment(1011, DATA, b"!", 1.5)
    assert out.events == []
    assert stream.pending_bytes == 6 and stats.pending_bytes == 6
    stream.segment(1001, DATA, b"hello", 2.0)
    assert out.events == [("data", b"hello", 2.0), ("data", b"world", 2.0), ("data", b"!", 2.0)]
    assert stats.out_of_order == 2
    assert stream.pending_bytes == 0 and stats.pending_bytes == 0


def test_duplicates_are_never_delivered_twice() -> None:
    stream, out, stats, _ = started()
    stream.segment(1001, DATA, b"abc", 1.0)
    stream.segment(1001, DATA, b"abc", 1.1)
    stream.segment(1004, DATA, b"def", 1.2)
    stream.segment(1004, DATA, b"def", 1.3)
    assert out.joined == b"abcdef"
    assert stats.retransmitted_bytes == 6


def test_partial_retransmission_is_trimmed() -> None:
    stream, out, stats, _ = started()
    stream.segment(1001, DATA, b"abcd", 1.0)
    stream.segment(1003, DATA, b"cdefg", 1.1)
    assert out.events[-1] == ("data", b"efg", 1.1)
    assert out.joined == b"abcdefg"
    assert stats.retransmitted_bytes == 2


def test_overlapping_out_of_order_segments_first_received_wins() -> None:
    stream, out, stats, _ = started()
    stream.segment(1004, DATA, b"DEF", 1.0)  # offsets 3..6
    stream.segment(1003, DATA, b"xyzwv", 1.1)  # offsets 2..7: only 2 and 6 are new
    stream.segment(1001, DATA, b"ab", 1.2)
    assert out.joined == b"abxDEFv"
    assert stats.overlap_bytes == 3


def test_in_order_segment_overlapping_buffered_data_keeps_the_buffered_bytes() -> None:
    stream, out, stats, _ = started()
    stream.segment(1004, DATA, b"XY", 1.0)  # offsets 3..5
    stream.segment(1001, DATA, b"abcdefg", 1.1)  # offsets 0..7
    assert out.joined == b"abcXYfg"
    assert stats.overlap_bytes == 2


def test_wrap_around_at_two_to_the_32() -> None:
    isn = SEQ_MASK - 3  # data starts 3 bytes before the wrap
    stream, out, stats, _ = started(isn)
    stream.segment(isn + 1, DATA, b"abc", 1.0)
    stream.segment(4, DATA, b"hij", 1.1)  # after the wrap, out of order
    stream.segment(0, DATA, b"defg", 1.2)  # crosses into the wrap
    stream.segment(SEQ_MASK, DATA, b"cd", 1.3)  # retransmission across the wrap point
    assert out.joined == b"abcdefghij"
    assert stream.next_seq == 7
    assert stats.retransmitted_bytes == 2


# --- gaps ----------------------------------------------------------------------------------


def test_ack_beyond_a_hole_gives_it_up_promptly() -> None:
    stream, out, stats, _ = started()
    stream.segment(1001, DATA, b"aaaa", 1.0)
    stream.segment(1009, DATA, b"cccc", 1.2)  # 1005..1008 lost by the capture
    stream.acked(1013, 1.3)
    assert out.events == [("data", b"aaaa", 1.0), ("gap", 4, 1.3), ("data", b"cccc", 1.3)]
    assert stats.ack_gaps == 1 and stats.gaps == 1 and stats.gap_bytes == 4


def test_ack_of_a_lost_tail_reports_the_gap_without_waiting() -> None:
    stream, out, _, _ = started()
    stream.segment(1001, DATA, b"head", 1.0)
    stream.acked(1011, 2.0)  # six more bytes were received by the peer, never by us
    assert len(out.events) == 2
    stream.segment(1011, DATA, b"next", 2.1)
    assert out.events[1:] == [("gap", 6, 2.0), ("data", b"next", 2.1)]


def test_ack_spanning_several_holes() -> None:
    stream, out, stats, _ = started()
    stream.segment(1003, DATA, b"b", 1.0)
    stream.segment(1006, DATA, b"d", 1.0)
    stream.acked(1009, 2.0)
    assert out.replay() == b"??b??d??"
    assert stats.gaps == 3


def test_old_or_current_acks_change_nothing() -> None:
    stream, out, stats, _ = started()
    stream.segment(1001, DATA, b"abc", 1.0)
    stream.acked(1004, 1.1)
    stream.acked(900, 1.2)
    assert out.events == [("data", b"abc", 1.0)] and stats.gaps == 0


def test_acks_before_the_stream_started_are_ignored() -> None:
    stream, out, _, _ = make()
    stream.acked(123_456, 1.0)
    assert out.events == []


def test_ack_of_the_fin_does_not_count_the_fin_as_a_byte() -> None:
    stream, out, _, _ = started()
    stream.segment(1001, DATA, b"ab", 1.0)
    stream.segment(1005, DATA | TCP_FIN, b"ef", 1.1)  # 1003..1004 lost; FIN at 1007
    assert not stream.finished
    stream.acked(1008, 1.2)
    assert out.replay() == b"ab??ef"
    assert stream.finished


def test_pending_overflow_gives_up_the_hole() -> None:
    stream, out, stats, _ = started(limits=FlowLimits(max_pending_bytes=8))
    stream.segment(1011, DATA, b"12345", 1.0)
    stream.segment(1016, DATA, b"6789", 1.1)  # 9 bytes buffered > 8
    assert out.replay() == b"??????????123456789"
    assert stats.pending_overflows == 1
    assert stream.pending_bytes == 0 and stats.pending_bytes == 0


def test_global_pending_budget_is_shared_between_streams() -> None:
    shared = FlowStats()
    limits = FlowLimits(max_total_pending=10)
    first, out1, _, _ = started(limits=limits, stats=shared)
    second, out2, _, _ = started(limits=limits, stats=shared)
    first.segment(1005, DATA, b"abcdef", 1.0)
    assert shared.pending_bytes == 6
    second.segment(1005, DATA, b"ghijkl", 1.1)  # total 12 > 10: the inserting stream yields
    assert out2.replay() == b"????ghijkl" and out1.events == []
    assert shared.pending_bytes == 6 and shared.pending_overflows == 1


def test_finish_flushes_buffered_data_and_a_missing_tail_before_fin() -> None:
    stream, out, _, _ = started()
    stream.segment(1003, DATA, b"cd", 1.0)
    stream.segment(1009, DATA | TCP_FIN, b"", 1.1)  # FIN after 8 bytes; 5..8 never seen
    stream.finish(3.0)
    assert out.replay() == b"??cd????"
    assert out.events[0] == ("gap", 2, 3.0)
    assert stream.finished


# --- FIN, caps and malformed input --------------------------------------------------------


def test_fin_is_finished_only_after_the_data_before_it() -> None:
    stream, _, _, _ = started()
    stream.segment(1004, DATA | TCP_FIN, b"def", 1.0)
    assert stream.fin_offset == 6 and not stream.finished
    stream.segment(1001, DATA, b"abc", 1.1)
    assert stream.finished


def test_byte_cap_cuts_the_direction() -> None:
    stream, out, stats, counts = started(limits=FlowLimits(max_stream_bytes=10))
    stream.segment(1001, DATA, b"0123456", 1.0)
    stream.segment(1016, DATA, b"later", 1.0)  # buffered, dropped by the cut
    stream.segment(1008, DATA, b"789abcd", 1.1)
    stream.segment(1021, DATA | TCP_FIN, b"more", 1.2)
    stream.acked(1030, 1.3)
    stream.finish(1.4)
    assert out.joined == b"0123456789" and counts[1] == 10
    assert all(kind == "data" for kind, _, _ in out.events)
    assert stream.cut and stream.finished
    assert stats.cut_streams == 1 and stats.cut_bytes == 4 + 5 + 4
    assert stats.pending_bytes == 0


def test_segment_far_ahead_is_bogus_not_a_huge_gap() -> None:
    stream, out, stats, _ = started()
    stream.segment(1001 + BOGUS_DISTANCE + 1, DATA, b"x", 1.0)
    stream.segment((1001 - BOGUS_DISTANCE - 5) & SEQ_MASK, DATA | TCP_FIN, b"y", 1.0)
    stream.acked(1001 + BOGUS_DISTANCE + 10, 1.1)
    stream.segment(1001, DATA, b"ok", 1.2)
    assert out.events == [("data", b"ok", 1.2)]
    assert stats.bogus_segments == 2 and stats.bogus_acks == 1
    assert stream.fin_offset is None


def test_retransmitted_syn_does_not_move_the_start() -> None:
    stream, out, _, _ = started(1000)
    stream.segment(1000, TCP_SYN, b"", 0.5)
    stream.segment(1001, DATA, b"a", 1.0)
    assert out.joined == b"a" and stream.syn_isn == 1000


# --- properties ------------------------------------------------------------------------------

isns = st.one_of(st.integers(0, SEQ_MASK), st.integers(SEQ_MASK - 3000, SEQ_MASK))


@st.composite
def segmented(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, int]]]:
    """A stream, its ISN and (start, end) segments covering it, plus random overlapping ones."""
    payload = draw(st.binary(min_size=2, max_size=3000))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(payload) - 1), max_size=40))))
    bounds = [0, *cuts, len(payload)]
    segs = list(pairwise(bounds))
    for _ in range(draw(st.integers(0, 10))):
        lo = draw(st.integers(0, len(payload) - 1))
        hi = draw(st.integers(lo + 1, min(len(payload), lo + 500)))
        segs.append((lo, hi))
    return draw(isns), payload, segs


@given(segmented(), st.data())
def test_property_permuted_duplicated_segments_give_back_the_stream(
    case: tuple[int, bytes, list[tuple[int, int]]], data: st.DataObject
) -> None:
    isn, payload, segs = case
    segs = segs + data.draw(st.lists(st.sampled_from(segs), max_size=10))
    order = data.draw(st.permutations(segs))
    stream, out, stats, counts = started(isn)
    for lo, hi in order:
        stream.segment((isn + 1 + lo) & SEQ_MASK, DATA, payload[lo:hi], 1.0)
    assert out.joined == payload
    assert all(kind == "data" for kind, _, _ in out.events)
    assert counts[1] == len(payload)
    assert stream.pending_bytes == 0 and stats.pending_bytes == 0


@given(segmented(), st.data(), st.booleans(), st.sampled_from([FlowLimits(), None]))
def test_property_lost_segments_are_accounted_for_exactly(
    case: tuple[int, bytes, list[tuple[int, int]]],
    data: st.DataObject,
    by_ack: bool,
    limits: FlowLimits | None,
) -> None:
    isn, payload, segs = case
    kept = data.draw(st.lists(st.sampled_from(segs), max_size=len(segs) + 5))
    small = FlowLimits(max_pending_bytes=data.draw(st.integers(1, 400)))
    stream, out, stats, _ = started(isn, limits=limits or small)
    for lo, hi in kept:
        stream.segment((isn + 1 + lo) & SEQ_MASK, DATA, payload[lo:hi], 1.0)
    end = (isn + 1 + len(payload)) & SEQ_MASK
    if by_ack:
        stream.acked(end, 2.0)  # the receiver had it all
    else:
        stream.segment(end, TCP_ACK | TCP_FIN, b"", 2.0)
        stream.finish(2.0)
    position = 0
    for kind, value, _ in out.events:
        if isinstance(value, bytes):
            assert payload[position : position + len(value)] == value, kind
            position += len(value)
        else:
            position += value
    assert position == len(payload)
    assert stats.gap_bytes + len(out.joined) == len(payload)
    assert stream.pending_bytes == 0 and stats.pending_bytes == 0


@given(
    st.lists(
        st.tuples(
            st.integers(0, SEQ_MASK),
            st.integers(0, 0xFF),
            st.binary(max_size=64),
            st.integers(0, SEQ_MASK),
        ),
        max_size=60,
    ),
    st.integers(1, 64),
)
def test_property_garbage_never_raises_and_stays_bounded(
    packets: list[tuple[int, int, bytes, int]], pending: int
) -> None:
    limits = FlowLimits(max_pending_bytes=pending, max_stream_bytes=500)
    stream, out, stats, counts = make(limits)
    for seq, flags, payload, ack in packets:
        stream.segment(seq, flags, payload, 1.0)
        stream.acked(ack, 1.0)
        assert stream.pending_bytes <= pending + 64
    stream.finish(2.0)
    assert stream.pending_bytes == 0 and stats.pending_bytes == 0
    assert len(out.joined) == counts[1] <= 500


def _state(stream: TcpStream, out: Out, stats: FlowStats, counts: list[int]) -> tuple[object, ...]:
    return (
        out.events,
        stats,
        counts,
        stream.offset,
        stream.fin_offset,
        stream.pending_bytes,
        stream.cut,
        stream.finished,
        stream.next_seq,
    )


def test_in_order_fast_path_stops_at_the_byte_cap() -> None:
    stream, out, stats, counts = started(limits=FlowLimits(max_stream_bytes=6))
    stream.segment(1001, DATA, b"abc", 1.0)  # fits: delivered whole
    stream.segment(1004, DATA, b"defg", 2.0)  # crosses the cap: cut at 6
    stream.segment(1008, DATA, b"h", 3.0)  # after the cut: dropped
    assert out.events == [("data", b"abc", 1.0), ("data", b"def", 2.0)]
    assert stream.cut and counts[1] == 6 and stats.cut_bytes == 2


def test_in_order_segment_with_fin_still_records_the_fin() -> None:
    stream, out, _, _ = started()
    stream.segment(1001, DATA | TCP_FIN, b"bye", 1.0)
    assert out.joined == b"bye" and stream.fin_offset == 3 and stream.finished


@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # offset from the ISN: in order, behind, ahead
            st.sampled_from([DATA, DATA | TCP_FIN, TCP_SYN, TCP_ACK]),
            st.binary(max_size=12),
        ),
        max_size=40,
    ),
    st.integers(1, 60),
)
def test_property_fast_path_equals_the_general_path(
    packets: list[tuple[int, int, bytes]], cap: int
) -> None:
    """`segment` (with its in-order shortcut) and `_segment` (the full rules) agree."""
    limits = FlowLimits(max_stream_bytes=cap, max_pending_bytes=30)
    fast = make(limits)
    slow = make(limits)
    for rel, flags, payload in packets:
        seq = (SEQ_MASK - 10 + rel) & SEQ_MASK  # crosses the wrap-around
        fast[0].segment(seq, flags, payload, 1.0)
        slow[0]._segment(seq, flags, payload, 1.0)
        assert _state(*fast) == _state(*slow)
