"""LiveFeed: bounded per client, filtered, never blocking the publisher."""

from __future__ import annotations

import asyncio

from pilotfish.api.live import LiveFeed
from tests.store.entries import make


def test_publish_without_loop_then_drain_delivers_to_matching_subscribers() -> None:
    async def scenario() -> None:
        feed = LiveFeed(max_queue=3)
        only_errors = feed.subscribe(lambda e: e.status == 500)
        everything = feed.subscribe(None)
        for i in range(5):
            feed.publish(make(i, status=500 if i == 2 else 200))
        feed.drain()
        assert only_errors.queue.qsize() == 1
        assert everything.queue.qsize() == 3 and everything.dropped == 2
        feed.unsubscribe(everything)
        assert feed.clients == 1 and feed.dropped() == 2

    asyncio.run(scenario())


def test_handover_is_bounded_and_counted() -> None:
    feed = LiveFeed(max_handover=10)
    for i in range(25):
        feed.publish(make(i))
    assert feed.published == 25 and feed.overflow == 15


def test_publish_from_another_thread_reaches_the_loop() -> None:
    async def scenario() -> None:
        feed = LiveFeed()
        feed.bind(asyncio.get_running_loop())
        sub = feed.subscribe(None)
        await asyncio.to_thread(lambda: [feed.publish(make(i)) for i in range(100)])
        got = [await asyncio.wait_for(sub.queue.get(), 2) for _ in range(100)]
        assert [e.id for e in got] == [f"n-{i}" for i in range(100)]

    asyncio.run(scenario())
