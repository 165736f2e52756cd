"""The per-stream queue (``backend.events.hub.Subscriber``): bounded, replay merged with live events."""

from __future__ import annotations

import asyncio

import pytest

from backend.events.hub import Hub, Subscriber, TooManyStreams
from backend.events.messages import RESYNC, Message, encode


def message(event_id: int) -> Message:
    result = encode(event_id, "tasks.changed", '{"action": "complete-all", "count": 2}')
    assert result is not None
    return result


async def drain(subscriber: Subscriber) -> list[Message]:
    out: list[Message] = []
    while True:
        try:
            got = await subscriber.next(0.01)
        except StopAsyncIteration:
            return out
        if got is None:
            return out
        out.append(got)


def test_a_subscriber_that_falls_behind_gets_resync_then_its_stream_ends() -> None:
    async def scenario() -> None:
        subscriber = Subscriber("u", None, queue_limit=4)
        for i in range(1, 100):
            subscriber.offer(message(i))
        assert await drain(subscriber) == [RESYNC]
        assert subscriber.ending
        subscriber.offer(message(100))  # nothing more is kept
        assert await drain(subscriber) == []

    asyncio.run(scenario())


def test_replayed_events_come_before_live_ones_without_repeats() -> None:
    async def scenario() -> None:
        subscriber = Subscriber("u", None)
        subscriber.hold(9)
        subscriber.offer(message(12))  # live, while the replay query runs
        subscriber.offer(message(13))
        subscriber.release([message(10), message(11), message(12)])
        assert [m.id for m in await drain(subscriber)] == [10, 11, 12, 13]
        subscriber.offer(message(13))  # already sent
        subscriber.offer(message(14))
        assert [m.id for m in await drain(subscriber)] == [14]

    asyncio.run(scenario())


def test_a_replay_that_cannot_be_given_is_a_resync_then_every_live_event() -> None:
    async def scenario() -> None:
        subscriber = Subscriber("u", None)
        subscriber.hold(999_999)  # an id this server never gave, above every id to come
        subscriber.offer(message(5))  # live, while the replay query runs
        subscriber.release(None)
        subscriber.offer(message(6))
        assert [m.id for m in await drain(subscriber)] == [None, 5, 6]
        subscriber.offer(message(6))  # already sent
        assert await drain(subscriber) == []

    asyncio.run(scenario())


def test_the_hub_routes_by_user_and_ends_every_stream_at_shutdown() -> None:
    async def scenario() -> None:
        hub = Hub()
        a, b = hub.subscribe("a", None), hub.subscribe("b", None)
        hub.publish("a", [message(1)])
        assert [m.id for m in await drain(a)] == [1]
        assert await drain(b) == []
        hub.close_all()
        assert a.ending
        assert b.ending
        late = hub.subscribe("c", None)
        assert late.ending
        hub.unsubscribe(a)
        assert not hub.wants("a")

    asyncio.run(scenario())


def test_a_reconnect_takes_the_place_of_the_stream_that_saw_its_last_event_id_once() -> None:
    async def scenario() -> None:
        hub = Hub(streams_per_user=2)
        first, second = hub.subscribe("u", None), hub.subscribe("u", None)
        hub.publish("u", [message(7), message(8)])  # both streams saw 8
        # The client of `first` vanished after id 8 and reconnects with it: a stream that saw 8 goes.
        taker = hub.subscribe("u", None, last_event_id=8)
        gone = {first, second} - hub._by_user["u"]
        assert len(gone) == 1
        assert next(iter(gone)).cut.is_set()
        # Without a matching Last-Event-ID, or with one no stream saw, the limit holds.
        for last_event_id in (None, 0, 3):
            with pytest.raises(TooManyStreams):
                hub.subscribe("u", None, last_event_id=last_event_id)
        # The stream that took a place is never given up in turn: live tabs cannot evict each other
        # forever.
        (other,) = hub._by_user["u"] - {taker}
        hub.unsubscribe(other)
        hub.subscribe("u", None)
        taker.last_id = 8
        with pytest.raises(TooManyStreams):
            hub.subscribe("u", None, last_event_id=8)
        assert taker in hub._by_user["u"]

    asyncio.run(scenario())


def test_a_new_stream_at_the_limit_waits_for_one_to_end() -> None:
    async def scenario() -> None:
        hub = Hub(streams_per_user=1)
        old = hub.subscribe("u", None)
        waiting = asyncio.create_task(hub.wait_for_room("u", 30))
        await asyncio.sleep(0)
        assert not waiting.done()
        hub.unsubscribe(old)  # the client went away
        await asyncio.wait_for(waiting, 5)
        hub.subscribe("u", None)
        # Nobody leaves: the wait ends by itself.
        await hub.wait_for_room("u", 0.01)

    asyncio.run(scenario())
