"""LiveFeed: filtered per subscriber, bounded per subscriber, never blocking the publisher."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.api.live import LiveFeed, Subscription, TooManyClients
from tests.store.entries import make


def test_publish_then_drain_delivers_to_matching_subscribers() -> None:
    feed = LiveFeed(max_queue=3)
    only_errors = feed.subscribe(lambda e: e.status == 500)
    everything = feed.subscribe(None)
    for i in range(5):
        feed.publish(make(i, status=500 if i == 2 else 200))
    feed.drain()
    assert only_errors.pending == 1 and only_errors.dropped == 0
    assert everything.pending == 3 and everything.dropped == 2
    feed.unsubscribe(everything)
    assert feed.clients == 1 and feed.dropped() == 2 and everything.closed


def test_without_subscribers_publishing_only_counts() -> None:
    feed = LiveFeed(max_handover=10)
    for i in range(25):
        feed.publish(make(i))
    assert feed.published == 25 and feed.pending() == 0 and feed.overflow == 0


def test_handover_is_bounded_and_counted() -> None:
    feed = LiveFeed(max_handover=10)
    sub, picky = feed.subscribe(None), feed.subscribe(lambda e: e.id == "n-99")
    for i in range(25):
        feed.publish(make(i))
    assert feed.pending() == 10 and feed.overflow == 15
    feed.drain()
    assert sub.pending == 10 and feed.pending() == 0
    # the overflowed entries never met a filter: every subscription hears of them
    assert sub.unfiltered == picky.unfiltered == 15 and sub.unreported and picky.unreported
    assert picky.take_dropped() == (0, 15) and not picky.unreported
    feed.note_lost(4)
    feed.drain()
    assert sub.take_dropped() == (0, 19) and feed.lost_upstream == 4


def test_poll_takes_what_waits_without_waiting() -> None:
    feed = LiveFeed()
    sub = feed.subscribe(None)
    assert sub.poll() is None
    for i in range(3):
        feed.publish(make(i))
    feed.drain()
    assert [e.id for e in iter(sub.poll, None)] == ["n-0", "n-1", "n-2"]
    assert sub.delivered == 3 and sub.pending == 0


def test_a_never_reading_subscriber_stays_at_its_bound() -> None:
    feed = LiveFeed(max_queue=1000, max_handover=100_000)
    stuck, picky = feed.subscribe(None), feed.subscribe(lambda e: e.id == "n-7")
    for i in range(50_000):
        feed.publish(make(i % 100))
        if i % 5000 == 4999:
            feed.drain()
    assert stuck.pending == 1000 and stuck.dropped == 49_000
    assert picky.pending == 500 and picky.dropped == 0
    assert feed.dropped() == 49_000


def test_iteration_ends_on_close_and_get_times_out() -> None:
    async def scenario() -> None:
        feed = LiveFeed()
        feed.bind(asyncio.get_running_loop())
        sub = feed.subscribe(None)
        assert await sub.get(timeout=0.01) is None
        feed.publish(make(1))
        feed.publish(make(2))
        got = []
        async for entry in sub:
            got.append(entry.id)
            if len(got) == 2:
                sub.close()
        assert got == ["n-1", "n-2"] and feed.clients == 0
        assert sub.delivered == 2 and sub.take_dropped() == (0, 0)

    asyncio.run(scenario())


def test_close_wakes_a_waiting_reader() -> None:
    async def scenario() -> None:
        sub = LiveFeed().subscribe(None)
        waiter = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)
        sub.close()
        assert await asyncio.wait_for(waiter, 5) is None

    asyncio.run(scenario())


def test_publish_from_another_thread_reaches_the_loop_in_order() -> None:
    async def scenario() -> None:
        feed = LiveFeed(max_queue=2000)
        feed.bind(asyncio.get_running_loop())
        sub = feed.subscribe(None)

        def produce() -> None:
            for i in range(1000):
                feed.publish(make(i))

        threads = [threading.Thread(target=produce)]
        for t in threads:
            t.start()
        got = [await asyncio.wait_for(sub.get(), 5) for _ in range(1000)]
        for t in threads:
            t.join()
        assert [e.id for e in got if e] == [f"n-{i}" for i in range(1000)]

    asyncio.run(scenario())


def test_publishing_after_the_loop_closed_does_not_raise() -> None:
    feed = LiveFeed()
    loop = asyncio.new_event_loop()
    feed.bind(loop)
    feed.subscribe(None)
    loop.close()
    feed.publish(make(1))
    assert feed.pending() == 0 and feed.published == 1


def test_the_number_of_clients_is_bounded() -> None:
    feed = LiveFeed(max_clients=2)
    first = feed.subscribe(None)
    feed.subscribe(None)
    with pytest.raises(TooManyClients):
        feed.subscribe(None)
    assert feed.refused == 1
    first.close()
    assert feed.subscribe(None) is not None and feed.clients == 2


def test_bad_queue_size_is_refused() -> None:
    with pytest.raises(ValueError):
        Subscription(None, 0)


@given(st.integers(1, 50), st.lists(st.booleans(), max_size=300))
def test_accounting_always_balances(bound: int, steps: list[bool]) -> None:
    """publish (True) or read one (False): offered = dropped + delivered + pending <= bound."""

    async def scenario() -> None:
        feed = LiveFeed(max_queue=bound, max_handover=1000)
        sub = feed.subscribe(None)
        for n, publish in enumerate(steps):
            if publish:
                feed.publish(make(n))
                feed.drain()
            else:
                await sub.get(timeout=0)
            assert sub.pending <= bound
            assert sub.offered == sub.dropped + sub.delivered + sub.pending
        assert sub.offered == sum(steps)

    asyncio.run(scenario())


def test_feeders_other_than_the_feed_count_drops_notify_and_hook_close() -> None:
    feed = LiveFeed(max_queue=2)
    sub = feed.subscribe(None)
    closed: list[bool] = []
    sub.on_close(lambda: closed.append(True))
    sub.note_dropped(3)
    sub.note_dropped(-1)  # nonsense from upstream is ignored
    sub.note_unfiltered(-5)
    assert (sub.offered, sub.dropped, sub.unfiltered) == (3, 3, 0)

    async def scenario() -> tuple[object, object]:
        waiting = asyncio.ensure_future(sub.get(timeout=5, notices=True))
        await asyncio.sleep(0.01)
        for k in range(20):
            sub.notify({"n": k})
        woke = await waiting  # a notice wakes a reader that asked for them
        plain = await sub.get(timeout=0.01)  # other readers keep waiting for entries
        return woke, plain

    assert asyncio.run(scenario()) == (None, None)
    assert len(sub.notices) == 16 and sub.notices[-1] == {"n": 19}
    sub.close()
    sub.notify({"late": True})
    assert closed == [True] and feed.clients == 0 and feed.dropped() == 3
