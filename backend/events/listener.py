"""One ``LISTEN task_events`` connection per worker: reads the announced events and hands them to the hub.

A notification carries the user's events whole when they fit in NOTIFY's 8,000 bytes
(``"+<length of the user id> <user id>"``, then ``"\\n<id> <type> <data>"`` per event), else
``"<first id> <last id> <user id>"``, and then the events are read from ``task_events`` in one query
per batch of notifications (or it is ``*`` after a TRUNCATE). Only users with an open stream on this
worker are looked at. The connection LISTENs only while this worker has an open stream: PostgreSQL
runs a transaction in a listening backend for every notification it reads, which doubled the cost of
every write while nobody watched (see :meth:`Listener.listen` for why a stream still misses nothing).
The same connection answers replays (``Last-Event-ID``) and purges old events now and then. It is a
plain asyncpg connection to a direct (session) server: ``LISTEN`` needs one, which is why
``DATABASE_LISTEN_URL`` exists.

Every id here is an event's number among its user's own events (``task_events.user_seq``, migration
0012), the id a stream sends: consecutive per user, in commit order, whatever other users do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url

from backend.events.hub import Hub
from backend.events.messages import RESYNC, Message, encode
from backend.settings import Settings, normalize_database_url

logger = logging.getLogger(__name__)

CHANNEL = "task_events"
BACKOFF_FIRST_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 5.0
# A connection that died without a word (network gone) is noticed by a probe at this interval.
PROBE_EVERY_SECONDS = 5.0
QUERY_TIMEOUT_SECONDS = 5.0
# Events are kept this long for Last-Event-ID replays; older ones are deleted every PURGE_EVERY_SECONDS.
KEEP_EVENTS = timedelta(minutes=15)
PURGE_EVERY_SECONDS = 60.0
# Each worker refreshes the event_streams rows of its open streams; a row older than STREAM_FRESH
# belongs to a worker that is gone and no longer counts.
REFRESH_STREAMS_EVERY_SECONDS = 20.0
STREAM_FRESH = timedelta(seconds=60)
_STREAM_OPEN = "SELECT event_stream_open($1, $2, $3, $4)"
_STREAMS_CLOSED = "DELETE FROM event_streams WHERE id = ANY($1::uuid[])"
_STREAMS_SEEN = "UPDATE event_streams SET seen_at = now() WHERE id = ANY($1::uuid[])"
# (user_seq, user id, type, data) of one task_events row: its number among the user's events is the id
# streams send.
_Event = tuple[int, str, str, str]
# InternalClientError: asyncpg's own state broken by a connection that died mid-operation (seen: LISTEN
# right after a reconnect during a database restart, "cannot switch to state 12").
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)

_FETCH = """
SELECT e.user_seq, e.user_id, e.type, e.data::text
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS n(user_id, first_id, last_id)
JOIN task_events e ON e.user_id = n.user_id AND e.user_seq BETWEEN n.first_id AND n.last_id
ORDER BY e.user_seq
"""
# The user's last event number and its events after $2 (at most $3), read in one snapshot: rows with
# a NULL event when there are none.
_REPLAY = """
SELECT c.last_seq, e.user_seq, e.type, e.data::text
FROM (SELECT task_events_last_seq($1) AS last_seq) c
LEFT JOIN LATERAL (
    SELECT user_seq, type, data FROM task_events
    WHERE user_id = $1 AND user_seq > $2 ORDER BY user_seq LIMIT $3
) e ON true
ORDER BY e.user_seq
"""
# One purge at a time across every worker and instance; the others skip their turn.
_PURGE = """
SELECT CASE WHEN pg_try_advisory_xact_lock(hashtextextended('task_events_purge', 13))
            THEN task_events_purge($1::interval) END
"""


def listen_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg.connect() arguments for DATABASE_LISTEN_URL (or DATABASE_URL), parsed as the engine does."""
    url = normalize_database_url(settings.database_listen_url or settings.database_url)
    _, kwargs = asyncpg_dialect().create_connect_args(make_url(url))  # type: ignore[no-untyped-call]
    # The name shows in pg_stat_activity, next to the pool's connections.
    return {
        **kwargs,
        "timeout": settings.database_pool_timeout,
        "server_settings": {"application_name": "tasks-api events listener"},
    }


class Listener:
    """Keeps the LISTEN connection up (reconnecting with backoff) and feeds the hub."""

    def __init__(self, connect_args: dict[str, Any], hub: Hub) -> None:
        self.connect_args = connect_args
        self.hub = hub
        self.connected = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one query at a time on the connection
        # Announced events of watched users, in commit order: (user, (first id, last id)) to read from
        # task_events, or (user, its events) when the notification carried them.
        self._pending: list[tuple[str, tuple[int, int] | list[_Event]]] = []
        self._delivering = False  # a batch is being read from task_events
        self._released: list[UUID] = []
        # LISTEN is on for the current connection. False from the moment an UNLISTEN starts, so that a
        # stream opening meanwhile waits for it (on the lock) and then LISTENs again.
        self._listening = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        hub.on_empty = self._wake.set  # the loop then UNLISTENs

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="task-events-listener")

    async def stop(self) -> None:
        connection = self._connection
        if connection is not None:
            # Best effort: rows left behind stop counting once they are STREAM_FRESH old.
            with contextlib.suppress(*_ERRORS):
                async with self._lock, asyncio.timeout(1):
                    await connection.execute(_STREAMS_CLOSED, [*self._released, *self.hub.stream_ids()])
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def replay(self, user_id: str, after: int, limit: int) -> list[Message] | None:
        """The user's events after ``after``, or None when they cannot all be given (purged, unknown
        id, more than ``limit``, no database): the stream then says resync."""
        connection = self._connection
        if connection is None:
            return None
        try:
            async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                rows = await connection.fetch(_REPLAY, user_id, after, limit)
        except _ERRORS as exc:
            logger.warning("event replay failed: %s", exc)
            return None
        # A user's numbers have no gaps (migration 0012): the events after ``after`` are exactly
        # after + 1 .. the last number. Fewer rows mean some were purged (or the id is from before
        # the numbering, below the user's first event); a number above the last was never given.
        missed = rows[0][0] - after
        events = [row for row in rows if row[1] is not None]
        if not 0 <= missed <= limit or len(events) != missed:
            return None
        return [m for m in (encode(r[1], r[2], r[3]) for r in events) if m is not None]

    async def listen(self) -> None:
        """LISTEN, if not already: call it for a new stream once it is in the hub (and holds live messages
        if it replays), before it goes live (before its first byte, and so before its replay query).

        Why the stream then misses no event: UNLISTEN happens only under the connection's lock and only
        while the hub is empty, so from the moment this returns until the stream leaves the hub, the
        connection listens. LISTEN commits before this returns, and PostgreSQL notifies a listener of
        every transaction that commits after its LISTEN did. So a change that commits after the stream
        went live is notified; one that committed before its replay query's snapshot is replayed; one in
        between comes both ways, and the stream drops the repeat by id. Without a connection (or if
        LISTEN fails, when the connection is dropped), the reconnect LISTENs first, while this stream is
        in the hub, and then sends every open stream ``resync``.
        """
        connection = self._connection
        if connection is None or self._listening:
            return
        try:
            async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                await self._listen(connection)
        except _ERRORS as exc:
            logger.warning("live updates: LISTEN failed, reconnecting: %s", exc)
            connection.terminate()

    async def _listen(self, connection: asyncpg.Connection) -> None:
        """Under ``_lock``: LISTEN if a stream is open and the connection does not listen yet."""
        if self.hub and not self._listening:
            await connection.add_listener(CHANNEL, self._notified)
            self._listening = True

    async def _unlisten(self, connection: asyncpg.Connection) -> None:
        """Under ``_lock``: UNLISTEN once no stream is open (a write then costs PostgreSQL no transaction
        in this connection's backend)."""
        if not self.hub and self._listening:
            self._listening = False
            await connection.remove_listener(CHANNEL, self._notified)

    async def channels(self) -> list[str] | None:
        """The channels the connection listens on, as PostgreSQL says (None without a connection)."""
        connection = self._connection
        if connection is None:
            return None
        async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
            return [r[0] for r in await connection.fetch("SELECT pg_listening_channels()")]

    async def admit(self, stream_id: UUID, user_id: str, most: int) -> bool | None:
        """Count the stream against the user's limit across every worker and instance: False when
        ``most`` are open already, None when the database cannot say (no connection)."""
        connection = self._connection
        if connection is None:
            return None
        try:
            async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                # Streams that just ended no longer count (a reload closes five and opens five).
                await self._delete_released(connection)
                return bool(await connection.fetchval(_STREAM_OPEN, stream_id, user_id, most, STREAM_FRESH))
        except _ERRORS as exc:
            logger.warning("live updates: stream limit check failed: %s", exc)
            return None

    async def _delete_released(self, connection: asyncpg.Connection) -> None:
        """Under ``_lock``: delete the rows of the streams released so far (those released meanwhile
        wait for the next turn; a failed delete keeps them)."""
        released, self._released = self._released, []
        if not released:
            return
        try:
            await connection.execute(_STREAMS_CLOSED, released)
        except BaseException:
            self._released[:0] = released
            raise

    def release(self, stream_id: UUID) -> None:
        """The stream ended: its row goes in the listener's next turn."""
        self._released.append(stream_id)
        self._wake.set()

    def _notified(self, _: Any, __: int, ___: str, payload: str) -> None:
        if payload == "*":
            self.hub.resync_all()
            return
        if payload.startswith("+"):
            self._notified_events(payload)
            return
        try:
            first, last, user_id = payload.split(" ", 2)
            span = int(first), int(last)
        except ValueError:  # not from our triggers: someone ran NOTIFY task_events by hand
            logger.warning("live updates: ignored a notification that is not an event: %.100r", payload)
            return
        if self.hub.wants(user_id):
            self._pending.append((user_id, span))
            self._wake.set()

    def _notified_events(self, payload: str) -> None:
        """A notification that carries its events: ``+<length> <user id>`` and ``\\n<id> <type> <data>``
        per event."""
        try:
            size, _, rest = payload[1:].partition(" ")
            user_id, lines = rest[: int(size)], rest[int(size) :]
            if not lines.startswith("\n"):
                raise ValueError("no event after the user id")
            events = []
            for line in lines[1:].split("\n"):
                event_id, event_type, data = line.split(" ", 2)
                events.append((int(event_id), user_id, event_type, data))
        except ValueError:
            # Ours or not (NOTIFY is open to every role that can connect), its user may have missed
            # an event: every stream refetches rather than stay silent.
            logger.warning("live updates: a notification did not parse, resync: %.100r", payload)
            self.hub.resync_all()
            return
        if not self.hub.wants(user_id):
            return
        if self._pending or self._delivering:  # behind events still to be read
            self._pending.append((user_id, events))
            self._wake.set()
        else:  # at once: the listener task need not be woken for it
            self._publish(events)

    async def _run(self) -> None:
        delay = BACKOFF_FIRST_SECONDS
        while True:
            try:
                connection = await asyncpg.connect(**self.connect_args)
            except _ERRORS as exc:
                logger.warning("live updates: cannot connect to listen (retry in %.1f s): %s", delay, exc)
            else:
                try:
                    await self._serve(connection)
                except _ERRORS as exc:
                    logger.warning("live updates: listen connection lost: %s", exc)
                    delay = BACKOFF_FIRST_SECONDS
                except Exception:
                    # Anything else must not end the listener for good: that worker's streams would get
                    # no event and no resync again. Logged whole, then a fresh connection.
                    logger.exception("live updates: the listener failed; reconnecting")
                finally:
                    self._connection = None
                    self.connected.clear()
                    connection.terminate()
            # Jitter: the workers of every instance reconnect after a database restart, not in step.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - not for security
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)

    async def _serve(self, connection: asyncpg.Connection) -> None:
        lost = asyncio.Event()

        def on_lost(_: object) -> None:
            # Wake the loop too: a lost connection is noticed at once, not at the next probe.
            lost.set()
            self._wake.set()

        connection.add_termination_listener(on_lost)
        self._pending.clear()
        self._listening = False
        self._connection = connection
        # Streams opened while there was no connection (or before this worker's first one) did not wait
        # for a LISTEN: listen for them now, then every open stream refetches what it may have missed.
        async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
            await self._listen(connection)
        self.connected.set()
        self.hub.resync_all()
        logger.info("live updates: connected")
        loop = asyncio.get_running_loop()
        next_purge = loop.time() + random.uniform(0, PURGE_EVERY_SECONDS)  # noqa: S311
        next_refresh = loop.time() + REFRESH_STREAMS_EVERY_SECONDS
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE_EVERY_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            await self._turn(connection)
            if loop.time() >= next_refresh:
                next_refresh = loop.time() + REFRESH_STREAMS_EVERY_SECONDS
                async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                    await connection.execute(_STREAMS_SEEN, self.hub.stream_ids())
            if loop.time() >= next_purge:
                next_purge = loop.time() + PURGE_EVERY_SECONDS
                async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS * 6):
                    await connection.fetchval(_PURGE, KEEP_EVENTS)
        raise asyncpg.InterfaceError("the listen connection was closed")

    async def _turn(self, connection: asyncpg.Connection) -> None:
        """One wake of the loop: deliver what was announced, delete the rows of ended streams, UNLISTEN
        once the last stream is gone; with nothing to do, probe the connection."""
        if self._pending:
            batch, self._pending = self._pending, []
            await self._deliver(connection, batch)
        elif self._released:
            async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                await self._delete_released(connection)
        elif not (self._listening and not self.hub):
            async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                await connection.fetchval("SELECT 1")
        if self._listening and not self.hub:
            async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                await self._unlisten(connection)

    async def _deliver(
        self, connection: asyncpg.Connection, batch: Sequence[tuple[str, tuple[int, int] | list[_Event]]]
    ) -> None:
        rows: list[_Event] = []
        spans = [(user_id, *item) for user_id, item in batch if isinstance(item, tuple)]
        self._delivering = True
        try:
            if spans:
                users, firsts, lasts = zip(*spans, strict=True)
                async with self._lock, asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                    rows.extend(await connection.fetch(_FETCH, users, firsts, lasts))
            for _, item in batch:
                if isinstance(item, list):
                    rows.extend(item)
            self._publish(rows)
        finally:
            self._delivering = False

    def _publish(self, rows: list[_Event]) -> None:
        # A user's events go out in id order (their commit order), however they came: a stream skips
        # an id lower than one it has already sent.
        rows.sort(key=lambda row: row[0])
        by_user: dict[str, list[Message]] = {}
        for event_id, user_id, event_type, data in rows:
            try:
                message = encode(event_id, event_type, data)
            except msgspec.MsgspecError:  # a NOTIFY sent by hand, or a row this version cannot read
                logger.warning("live updates: an event did not decode, resync: %.100r", data)
                message = RESYNC
            if message is not None:
                by_user.setdefault(user_id, []).append(message)
        for user_id, messages in by_user.items():
            self.hub.publish(user_id, messages)
