"""The per-stream queue (``backend.events.hub.Subscriber``): bounded, replay merged with live events."""

from __future__ import annotations

import asyncio

from backend.events.hub import Hub, Subscriber
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
