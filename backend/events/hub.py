"""Per-user fan-out inside one worker: who is subscribed, and each subscriber's bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from uuid import UUID, uuid4

from litestar.exceptions import HTTPException

from backend.events.messages import RESYNC, Message

logger = logging.getLogger(__name__)

STREAMS_PER_USER = 5
STREAM_RETRY_AFTER_SECONDS = "5"
# Messages a stream may have waiting; a client further behind gets a resync and is cut off.
QUEUE_LIMIT = 256
# How long a stream that overflowed (or a server that is exiting) waits for its last message to be
# written before the connection is cut regardless (a client that reads nothing would hold it forever).
CUT_AFTER_SECONDS = 5.0
SHUTDOWN_CUT_AFTER_SECONDS = 0.5


class Subscriber:
    """One open stream: its queue of messages, and whether it is ending."""

    def __init__(self, user_id: str, expires_at: float | None, queue_limit: int = QUEUE_LIMIT) -> None:
        self.id = uuid4()
        self.user_id = user_id
        self.expires_at = expires_at
        self.counted = False  # holds a row of event_streams (the limit across workers)
        self.queue_limit = queue_limit
        # The highest event id queued: ids of one user arrive in increasing order, and a replayed
        # event that also arrives live is skipped.
        self.last_id = 0
        self.ending = False  # no more messages: the stream ends once its queue is written
        # Admitted in the place of a stream that presented the same Last-Event-ID: never given up in turn
        # (six live tabs would otherwise evict each other forever).
        self.took_a_place = False
        self.cut = asyncio.Event()  # end now, even in the middle of a write
        self._queue: deque[Message] = deque()
        self._ready = asyncio.Event()
        self._held: list[Message] | None = None

    def hold(self, after: int) -> None:
        """Keep live messages aside while the events after ``after`` are read from the database (see
        :meth:`release`). Call it right after subscribing, before anything can be queued."""
        self.last_id = after
        self._held = []

    def release(self, replayed: Iterable[Message] | None) -> None:
        """Queue the replayed messages, then the live ones that arrived meanwhile (without repeats).

        None: the events could not be replayed; a resync goes first, and then every live message. The
        id presented may be one this server never gave (garbage, another database's), above every id
        still to come: kept as the floor, it would silence the stream.
        """
        held, self._held = self._held or [], None
        if replayed is None:
            replayed = [RESYNC]
            self.last_id = 0
        for message in (*replayed, *held):
            self.offer(message)

    def offer(self, message: Message) -> None:
        if self.ending:
            return
        if self._held is not None:
            self._held.append(message)
            if len(self._held) <= self.queue_limit:
                return
            self._held = None
        else:
            if message.id is not None:
                if message.id <= self.last_id:
                    return
                self.last_id = message.id
            elif message is RESYNC and self._queue and self._queue[-1] is RESYNC:
                return
            if len(self._queue) < self.queue_limit:
                self._queue.append(message)
                self._ready.set()
                return
        # Too far behind: drop what waits (the client refetches anyway), say so, and end.
        logger.warning("event stream of a user fell %d messages behind: resync and close", self.queue_limit)
        self._queue.clear()
        self._queue.append(RESYNC)
        self.end(CUT_AFTER_SECONDS)

    def end(self, cut_after: float) -> None:
        """Write what is queued, then close; cut the connection after ``cut_after`` seconds regardless."""
        if not self.ending:
            self.ending = True
            self._ready.set()
            asyncio.get_running_loop().call_later(cut_after, self.cut.set)

    async def next(self, timeout: float) -> Message | None:  # noqa: ASYNC109 - a wait, not a deadline
        """The next message; None after ``timeout`` seconds without one. Raises StopAsyncIteration at
        the end."""
        if not self._queue:
            if self.ending:
                raise StopAsyncIteration
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return None
        if self._queue:
            return self._queue.popleft()
        raise StopAsyncIteration


class TooManyStreams(HTTPException):
    """The 6th stream of a user: a 429 problem document (shaped by ``backend.errors``)."""

    status_code = 429


class Hub:
    """The open streams of this worker, by user."""

    def __init__(self, streams_per_user: int = STREAMS_PER_USER, queue_limit: int = QUEUE_LIMIT) -> None:
        self.streams_per_user = streams_per_user
        self.queue_limit = queue_limit
        self.exiting = False
        # Told the id of every stream that ends while it was counted across workers.
        self.on_release: Callable[[UUID], None] = lambda _: None
        # Told when the last stream of this worker ends (the listener then stops listening).
        self.on_empty: Callable[[], None] = lambda: None
        self._by_user: dict[str, set[Subscriber]] = {}
        self._freed = asyncio.Event()  # set (and replaced) whenever a stream ends

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def subscribe(
        self, user_id: str, expires_at: float | None, last_event_id: int | None = None
    ) -> Subscriber:
        subscriber = Subscriber(user_id, expires_at, self.queue_limit)
        full = len(self._by_user.get(user_id, ())) >= self.streams_per_user
        if full and not self.take_place_of_dead(subscriber, last_event_id):
            raise self.too_many()
        self._by_user.setdefault(user_id, set()).add(subscriber)
        if self.exiting:
            subscriber.end(SHUTDOWN_CUT_AFTER_SECONDS)
        return subscriber

    def take_place_of_dead(self, newcomer: Subscriber, last_event_id: int | None) -> bool:
        """Make room for ``newcomer``, a reconnect that presents ``last_event_id``: end a stream of the
        same user whose last event is that one, presumably the same client's whose connection died
        without a word (the server would notice only at a later write). False when there is none."""
        if last_event_id is None or last_event_id <= 0:
            return False
        for stream in self._by_user.get(newcomer.user_id, ()):
            if stream is not newcomer and not stream.took_a_place and stream.last_id == last_event_id:
                self.unsubscribe(stream)
                stream.cut.set()
                newcomer.took_a_place = True
                return True
        return False

    async def wait_for_room(self, user_id: str, within: float) -> None:
        """Return once ``user_id`` has fewer than the most streams open here, or after ``within`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self._by_user.get(user_id, ())) >= self.streams_per_user and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._freed.wait()

    def too_many(self) -> TooManyStreams:
        # Retry-After: a client that backs off (the TypeScript client's followEvents does) waits for a
        # stream that is closing to give up its place, instead of guessing.
        return TooManyStreams(
            detail=f"at most {self.streams_per_user} open event streams per user; close one first",
            headers={"Retry-After": STREAM_RETRY_AFTER_SECONDS},
        )

    def unsubscribe(self, subscriber: Subscriber) -> None:
        streams = self._by_user.get(subscriber.user_id)
        if streams is not None and subscriber in streams:
            streams.discard(subscriber)
            if not streams:
                del self._by_user[subscriber.user_id]
            if subscriber.counted:
                self.on_release(subscriber.id)
            if not self._by_user:
                self.on_empty()
            self._freed.set()
            self._freed = asyncio.Event()

    def stream_ids(self) -> list[UUID]:
        return [s.id for streams in self._by_user.values() for s in streams if s.counted]

    def wants(self, user_id: str) -> bool:
        return user_id in self._by_user

    def publish(self, user_id: str, messages: Iterable[Message]) -> None:
        streams = self._by_user.get(user_id, ())
        for message in messages:
            for subscriber in streams:
                subscriber.offer(message)

    def resync_all(self) -> None:
        for streams in self._by_user.values():
            for subscriber in streams:
                subscriber.offer(RESYNC)

    def close_all(self) -> None:
        """The server is exiting: every stream ends now, so clients reconnect to another instance."""
        self.exiting = True
        for streams in self._by_user.values():
            for subscriber in streams:
                subscriber.end(SHUTDOWN_CUT_AFTER_SECONDS)
