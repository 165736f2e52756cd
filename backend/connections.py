"""Pooled connections for the hot path: straight from the engine's pool, handed out in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn


@asynccontextmanager
async def checkout(engine: AsyncEngine) -> AsyncIterator[PoolProxiedConnection]:
    """The pool's connection itself (``.driver_connection`` is asyncpg's), given back on exit.

    ``engine.connect()`` would also build a Connection and an AsyncConnection and close them in a
    task of their own: a few percent of a request's CPU for a single statement.
    """
    connection = await engine.raw_connection()
    try:
        yield connection
    finally:
        # Giving it back can await (closing a connection that was invalidated or overflowed).
        await greenlet_spawn(connection.close)


class ConnectionQueue:
    """At most ``size`` connections in use; everyone else waits in line, at most ``timeout`` seconds.

    SQLAlchemy's async pool waits on an ``asyncio.Queue``, which is not fair: a connection given back
    while requests wait goes to whoever asks next, often a request that has just arrived, and a waiter
    that loses that race goes to the back of the line. With more requests than connections, some lose
    it until the pool timeout (bench, 1,000 connections: 34-237 503s per 10-s run of the fastest
    case while the median wait was 0.1 s). ``asyncio.Semaphore`` wakes waiters in order and lets no
    newcomer pass them, so sized like the pool it leaves the pool itself nobody to be unfair to.
    """

    def __init__(self, engine: AsyncEngine, size: int, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self._slots = asyncio.Semaphore(size)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[PoolProxiedConnection]:
        if not self._slots.locked():
            await self._slots.acquire()  # free: no wait, so no timer to arm (a timer per query costs)
        else:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            except TimeoutError:
                # The pool's own timeout error: the same 503 + Retry-After as a pool that ran dry.
                raise PoolTimeoutError(f"no database connection free within {self.timeout:g} s") from None
        try:
            async with checkout(self.engine) as connection:
                yield connection
        finally:
            self._slots.release()
