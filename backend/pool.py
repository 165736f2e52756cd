"""The engine's connection pool, handing connections out in arrival order."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import exc
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import await_only


class FairAsyncPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async queue pool, with waiters served first come, first served.

    The stock pool waits on an ``asyncio.Queue``, which is not fair: a connection given back while
    requests wait goes to whoever asks next, often a request that has just arrived, and a waiter that
    loses that race goes to the back of the line. With more requests than connections, some lose it
    until the pool timeout (bench, 1,000 connections: 34-237 503s per 10-s run of the fastest case while
    the median wait was 0.1 s). An ``asyncio.Semaphore`` sized like the pool wakes waiters in order and
    lets no newcomer pass them, which leaves the queue behind it nobody to be unfair to. With
    ``max_overflow=-1`` (no limit) nobody ever waits, so there is no line either.

    SQLAlchemy has the same unfairness in its threaded ``QueuePool``: sqlalchemy/sqlalchemy#7679 (open).
    This class overrides the pool's private ``_do_get``/``_do_return_conn`` and reads ``_timeout``
    (SQLAlchemy 2.0); tests/test_connections.py pins it, with a control that fails once the stock pool
    serves waiters in order.
    """

    def __init__(self, creator: Any, pool_size: int = 5, max_overflow: int = 10, **kw: Any) -> None:
        super().__init__(creator, pool_size=pool_size, max_overflow=max_overflow, **kw)
        # As QueuePool reads them: a negative max_overflow means no limit on connections.
        self._line = asyncio.Semaphore(pool_size + max_overflow) if max_overflow >= 0 else None

    def _do_get(self) -> ConnectionPoolEntry:
        if self._line is None:
            return super()._do_get()
        if not self._line.locked():
            await_only(self._line.acquire())  # free: no timer to arm (one per checkout costs)
        else:
            try:
                await_only(asyncio.wait_for(self._line.acquire(), self._timeout))
            except TimeoutError:
                raise exc.TimeoutError(f"no database connection free within {self._timeout:g} s") from None
        try:
            # A place in line means a connection is idle or may be opened: this does not wait.
            return super()._do_get()
        except BaseException:
            self._line.release()
            raise

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            if self._line is not None:
                self._line.release()


# SQLAlchemy's pools log "disposed"/"recreating" at INFO under their class's module: keep ours as quiet as
# SQLAlchemy's own (the app's loggers are at INFO).
logging.getLogger(__name__).setLevel(logging.WARNING)
