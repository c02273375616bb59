"""Fragment reassembly: any arrival order works, overlaps and floods are bounded and counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.config import DecodeLimits
from pilotfish.decode.fragments import MAX_PIECES, Reassembler
from pilotfish.decode.stats import DecodeStats

from .frames import split

DATAGRAM = bytes(range(256)) * 3  # 768 bytes
KEY = ("a", "b", 1)


def make(**limits: float) -> tuple[Reassembler, DecodeStats]:
    stats = DecodeStats()
    return Reassembler(DecodeLimits(**limits), stats), stats  # type: ignore[arg-type]


def feed(r: Reassembler, pieces: list[tuple[int, bytes]], ts: float = 0.0) -> list[bytes]:
    last = max(off for off, _ in pieces)
    out = []
    for off, piece in pieces:
        whole = r.add(KEY, ts, off, off != last, piece)
        if whole is not None:
            out.append(whole)
    return out


def test_in_order() -> None:
    r, stats = make()
    assert feed(r, split(DATAGRAM, [256, 512])) == [DATAGRAM]
    assert (stats.fragments, stats.reassembled, len(r)) == (3, 1, 0)


def test_out_of_order_last_first() -> None:
    r, stats = make()
    assert feed(r, list(reversed(split(DATAGRAM, [8, 400])))) == [DATAGRAM]
    assert stats.reassembled == 1


def test_duplicates_are_ignored_and_counted() -> None:
    r, stats = make()
    pieces = split(DATAGRAM, [256, 512])
    assert feed(r, [pieces[0], pieces[0], pieces[1], pieces[2]]) == [DATAGRAM]
    assert stats.fragment_duplicates == 1
    # a smaller fragment inside one already held is a duplicate too
    r.add(KEY, 0.0, 0, True, DATAGRAM[:256])
    assert r.add(KEY, 0.0, 8, True, DATAGRAM[8:16]) is None
    assert stats.fragment_duplicates == 2


def test_partial_overlap_drops_the_datagram() -> None:
    r, stats = make()
    assert r.add(KEY, 0.0, 0, True, DATAGRAM[:256]) is None
    assert r.add(KEY, 0.0, 248, True, DATAGRAM[248:512]) is None
    assert stats.fragment_overlaps == 1
    assert len(r) == 0
    # later fragments start a fresh set that never completes on its own
    assert r.add(KEY, 0.0, 512, False, DATAGRAM[512:]) is None
    assert len(r) == 1


def test_overlap_spanning_two_pieces() -> None:
    r, stats = make()
    r.add(KEY, 0.0, 0, True, DATAGRAM[:16])
    r.add(KEY, 0.0, 16, True, DATAGRAM[16:32])
    r.add(KEY, 0.0, 8, True, DATAGRAM[8:24])
    assert stats.fragment_overlaps == 1


def test_two_different_ends_drop_the_datagram() -> None:
    r, stats = make()
    r.add(KEY, 0.0, 64, False, DATAGRAM[64:128])
    r.add(KEY, 0.0, 128, False, DATAGRAM[128:192])
    assert stats.fragment_overlaps == 1


def test_piece_beyond_known_end_drops_the_datagram() -> None:
    r, stats = make()
    r.add(KEY, 0.0, 64, False, DATAGRAM[64:128])
    r.add(KEY, 0.0, 120, True, DATAGRAM[120:200])
    assert stats.fragment_overlaps == 1
    r2, stats2 = make()
    r2.add(KEY, 0.0, 120, True, DATAGRAM[120:200])
    r2.add(KEY, 0.0, 64, False, DATAGRAM[64:128])
    assert stats2.fragment_overlaps == 1


def test_missing_fragment_times_out_on_capture_time() -> None:
    r, stats = make(fragment_timeout=30.0)
    r.add(KEY, 100.0, 0, True, DATAGRAM[:256])
    assert r.expire(129.0) == 0
    assert len(r) == 1
    assert r.expire(131.0) == 1
    assert (stats.fragment_timeouts, len(r)) == (1, 0)


def test_late_fragment_of_a_stale_set_restarts_it() -> None:
    r, stats = make(fragment_timeout=30.0)
    r.add(KEY, 0.0, 0, True, DATAGRAM[:256])
    assert r.add(KEY, 50.0, 256, False, DATAGRAM[256:]) is None
    assert stats.fragment_timeouts == 1
    assert len(r) == 1


def test_too_many_sets_evicts_the_oldest() -> None:
    r, stats = make(max_fragment_sets=2)
    for ident in range(3):
        r.add(("x", ident), float(ident), 0, True, b"12345678")
    assert len(r) == 2
    assert stats.fragment_overflow == 1
    # set 0 was evicted: its last fragment cannot complete it
    assert r.add(("x", 0), 3.0, 8, False, b"abc") is None
    assert r.add(("x", 2), 3.0, 8, False, b"abc") == b"12345678abc"


def test_datagram_larger_than_the_limit_is_dropped() -> None:
    r, stats = make(max_datagram=1000)
    r.add(KEY, 0.0, 0, True, bytes(512))
    assert r.add(KEY, 0.0, 512, False, bytes(512)) is None
    assert (stats.fragment_overflow, len(r)) == (1, 0)


def test_tiny_fragment_flood_is_bounded() -> None:
    r, stats = make()
    for i in range(MAX_PIECES + 5):
        r.add(KEY, 0.0, i * 8, True, bytes(8))
    assert stats.fragment_overflow == 1
    assert len(r) == 1  # the flood's tail started a new set, which is bounded again


def test_empty_last_fragment_completes() -> None:
    r, _ = make()
    r.add(KEY, 0.0, 0, True, b"12345678")
    assert r.add(KEY, 0.0, 8, False, b"") == b"12345678"


@given(
    cuts=st.sets(st.integers(1, len(DATAGRAM) // 8 - 1).map(lambda n: n * 8), max_size=20),
    order=st.randoms(use_true_random=False),
    dups=st.lists(st.integers(0, 30), max_size=5),
)
def test_any_permutation_with_duplicates_reassembles(cuts, order, dups) -> None:  # type: ignore[no-untyped-def]
    pieces = split(DATAGRAM, cuts)
    extra = [pieces[i % len(pieces)] for i in dups]
    arrival = pieces + extra
    order.shuffle(arrival)
    r, stats = make()
    last = pieces[-1][0]
    results = [r.add(KEY, 0.0, off, off != last, p) for off, p in arrival]
    done = [x for x in results if x is not None]
    assert done
    assert all(x == DATAGRAM for x in done)
    # duplicates arriving after completion start a new (incomplete) set; never a second copy
    assert stats.reassembled == len(done)
    assert stats.fragment_overlaps == 0


def test_zero_sets_disables_reassembly() -> None:
    r, stats = make(max_fragment_sets=0)
    assert r.add(KEY, 0.0, 0, True, b"12345678") is None
    assert (len(r), stats.fragment_overflow) == (0, 1)


def test_total_fragment_bytes_are_bounded_oldest_dropped_first() -> None:
    from pilotfish.config import DecodeLimits
    from pilotfish.decode.fragments import Reassembler
    from pilotfish.decode.stats import DecodeStats

    stats = DecodeStats()
    r = Reassembler(DecodeLimits(max_fragment_bytes=3000), stats)
    for ident in range(5):  # five datagrams, each holding a 1000-byte first fragment
        assert r.add(("a", ident), 0.0, 0, True, b"x" * 1000) is None
    assert r.held_bytes <= 3000
    assert len(r) == 3
    assert stats.fragment_overflow == 2
    # the newest datagrams survived and still complete
    assert r.add(("a", 4), 0.1, 1000, False, b"y" * 10) == b"x" * 1000 + b"y" * 10
    assert r.held_bytes == 2000
