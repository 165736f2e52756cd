"""One stream: the messages of a subscriber as SSE bytes, and a response that can be cut off."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, cast

from anyio import create_task_group
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from backend.events.hub import Hub, Subscriber
from backend.events.listener import Listener
from backend.events.messages import HELLO, PING, TOKEN_EXPIRED

# A comment line at least this often keeps proxies from closing an idle stream (the contract: <= 15 s).
PING_EVERY_SECONDS = 10.0


def parse_last_event_id(value: str | None) -> int | None:
    """The position a reconnecting client gives; -1 for one this server never hands out."""
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else -1


async def messages(
    subscriber: Subscriber, listener: Listener, last_event_id: int | None
) -> AsyncIterator[bytes]:
    """HELLO, the missed events (or a resync) after a Last-Event-ID, then live events and pings until
    the subscriber ends or its token expires."""
    yield HELLO
    if last_event_id is not None:  # the subscriber holds live messages meanwhile (see the controller)
        replayed = None
        if last_event_id >= 0:
            replayed = await listener.replay(subscriber.user_id, last_event_id, subscriber.queue_limit)
        subscriber.release(replayed)
    while True:
        timeout = PING_EVERY_SECONDS
        if subscriber.expires_at is not None:
            left = subscriber.expires_at - time.time()
            if left <= 0:
                yield TOKEN_EXPIRED.frame
                return
            timeout = min(timeout, left)
        try:
            message = await subscriber.next(timeout)
        except StopAsyncIteration:
            return
        yield PING if message is None else message.frame


class _Cuttable:
    """Litestar's streaming response (which ends when the client disconnects), run through its public
    ASGI interface, plus: it ends when the subscriber is cut (even while a write waits for a client
    that does not read), and it always unsubscribes."""

    def __init__(self, response: ASGIResponse, hub: Hub, subscriber: Subscriber) -> None:
        self.response = response
        self.hub = hub
        self.subscriber = subscriber

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with create_task_group() as task_group:
                done = task_group.cancel_scope

                async def respond() -> None:
                    await self.response(scope, receive, send)
                    done.cancel()

                async def cut() -> None:
                    await self.subscriber.cut.wait()
                    done.cancel()

                task_group.start_soon(respond)
                task_group.start_soon(cut)
        finally:
            self.hub.unsubscribe(self.subscriber)


class EventStream(Stream):
    """``text/event-stream`` of one subscriber."""

    __slots__ = ("hub", "subscriber")

    def __init__(self, hub: Hub, subscriber: Subscriber, content: AsyncIterator[bytes]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            # nginx passes each event on at once (Cache-Control comes from backend.observability).
            headers={"X-Accel-Buffering": "no"},
        )
        self.hub = hub
        self.subscriber = subscriber

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        response = super().to_asgi_response(*args, **kwargs)
        # Litestar only calls what this returns (an ASGI app): the wrapper needs nothing else of it.
        return cast("ASGIResponse", _Cuttable(response, self.hub, self.subscriber))
