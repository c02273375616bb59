"""Entries across processes: framing (sans-IO), a sender that never blocks, the receiver."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.api.feedpipe import (
    FLUSH_AT,
    FeedError,
    FeedReceiver,
    FeedSender,
    FrameDecoder,
    encode_frame,
)
from pilotfish.api.live import LiveFeed
from pilotfish.model import Entry
from tests.store.entries import make


def test_frames_round_trip() -> None:
    data = b"".join(encode_frame(make(i)) for i in range(3))
    dec = FrameDecoder()
    assert dec.feed(data) == [make(0), make(1), make(2)]
    assert dec.buffered == 0 and dec.frames == 3


def test_a_frame_split_anywhere_waits_for_the_rest() -> None:
    frame = encode_frame(make(1, body="hello"))
    dec = FrameDecoder()
    assert dec.feed(frame[:2]) == [] and dec.feed(frame[2:-1]) == []
    assert dec.buffered == len(frame) - 1
    assert dec.feed(frame[-1:]) == [make(1, body="hello")]


def test_a_frame_that_is_not_an_entry_is_skipped_and_counted() -> None:
    junk = b"\xc1not msgpack"
    dec = FrameDecoder()
    got = dec.feed(struct.pack("!I", len(junk)) + junk + encode_frame(make(2)))
    assert got == [make(2)] and dec.bad_frames == 1


def test_count_frames_add_up_and_nonsense_counts_are_bad_frames() -> None:
    dec = FrameDecoder()
    data = encode_frame(3) + encode_frame(make(1)) + encode_frame(4) + encode_frame(-2)
    assert dec.feed(data) == [make(1)]
    assert dec.lost == 7 and dec.bad_frames == 1


def test_an_absurd_length_breaks_the_stream() -> None:
    dec = FrameDecoder(max_frame=1000)
    with pytest.raises(FeedError):
        dec.feed(struct.pack("!I", 1001) + b"x")


@given(st.lists(st.integers(0, 500), max_size=8), st.binary(max_size=200))
def test_any_chunking_gives_the_same_entries(cuts: list[int], tail: bytes) -> None:
    entries = [make(i, body="b" * i) for i in range(4)]
    data = b"".join(encode_frame(e) for e in entries)
    dec = FrameDecoder()
    got: list[Entry] = []
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        got += dec.feed(data[last:cut])
        last = cut
    got += dec.feed(data[last:])
    assert got == entries
    try:  # garbage afterwards: skipped, buffered within bound, or a framing error
        dec.feed(tail)
    except FeedError:
        return
    assert dec.buffered <= dec.max_frame + 4


def test_sender_never_blocks_on_a_receiver_that_does_not_read() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sender = FeedSender(sock=ours, max_buffer=64 * 1024)
        for i in range(5000):
            sender.publish(make(i, body="x" * 200))
        c = sender.counters()
        assert c["sent"] + c["dropped"] == 5000 and c["dropped"] > 0
        assert c["buffered"] <= 64 * 1024
        # what was sent arrives intact once the receiver reads
        theirs.setblocking(False)
        dec, got = FrameDecoder(), list[Entry]()
        while len(got) < c["sent"]:
            try:
                got += dec.feed(theirs.recv(1 << 16))
            except BlockingIOError:
                sender.flush()
        assert [e.id for e in got[:3]] == ["n-0", "n-1", "n-2"]
        # and the receiver was told of every entry that did not fit
        while dec.lost < c["dropped"]:
            sender.flush()
            with contextlib.suppress(BlockingIOError):
                got += dec.feed(theirs.recv(1 << 16))
        assert dec.lost == c["dropped"] and len(got) == c["sent"] and dec.bad_frames == 0
    finally:
        ours.close()
        theirs.close()


def test_publish_writes_once_enough_waits_and_flush_writes_the_rest() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        theirs.setblocking(False)
        sender = FeedSender(sock=ours)
        sender.publish(make(1))
        assert sender.buffered > 0  # nothing written yet: one call per pass, not per entry
        with pytest.raises(BlockingIOError):
            theirs.recv(1)
        for _ in range(FLUSH_AT // 1000 + 1):
            sender.publish(make(2, body="x" * 1000))
        assert theirs.recv(1 << 20, socket.MSG_PEEK)  # written without waiting for flush()
        sender.publish(make(3))
        sender.flush()
        dec = FrameDecoder()
        got: list[Entry] = []
        with contextlib.suppress(BlockingIOError):
            while True:
                got += dec.feed(theirs.recv(1 << 20))
        assert len(got) == sender.sent and got[0] == make(1) and got[-1] == make(3)
    finally:
        ours.close()
        theirs.close()


def test_sender_without_receiver_counts_and_retries_at_most_once_per_interval(
    tmp_path: Path,
) -> None:
    now = [0.0]
    sender = FeedSender(tmp_path / "nobody.sock", retry_s=1.0, clock=lambda: now[0])
    for i in range(10):
        sender.publish(make(i))
    assert sender.unconnected == 10 and sender.sent == 0
    now[0] = 5.0
    sender.publish(make(11))
    assert sender.unconnected == 11


def test_sender_to_receiver_to_feed(tmp_path: Path) -> None:
    path = tmp_path / "feed.sock"

    async def scenario() -> None:
        feed = LiveFeed()
        feed.bind(asyncio.get_running_loop())
        sub = feed.subscribe(lambda e: e.status == 500)
        receiver = FeedReceiver(path, feed)
        await receiver.start()
        sender = FeedSender(path)

        def produce() -> None:
            for i in range(200):
                sender.publish(make(i, status=500 if i % 2 else 200))

        await asyncio.to_thread(produce)
        got: list[str] = []
        while len(got) < 100:
            sender.flush()
            entry = await asyncio.wait_for(sub.get(), 5)
            assert entry is not None
            got.append(entry.id)
        assert got == [f"n-{i}" for i in range(1, 200, 2)]
        assert receiver.counters()["received"] == 200
        # a sender that sends garbage is cut off, the receiver keeps serving others
        bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bad.connect(str(path))
        bad.sendall(struct.pack("!I", 0xFFFFFFFF))
        for _ in range(100):
            if receiver.broken_streams:
                break
            await asyncio.sleep(0.01)
        bad.close()
        assert receiver.broken_streams == 1
        sender.publish(make(301, status=500))
        sender.flush()  # the owner's loop does this once per pass
        entry = await asyncio.wait_for(sub.get(), 5)
        assert entry is not None and entry.id == "n-301"
        sender.close()
        await receiver.stop()
        assert not path.exists()

    asyncio.run(scenario())
