"""The pool (``backend.pool``) hands connections out in arrival order, and nobody waits past its timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import greenlet_spawn

from backend.pool import FairAsyncPool

Connect = Callable[[], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def _engine(
    url: str,
    poolclass: type[Any] = FairAsyncPool,
    pool_timeout: float = 30,
    pool_size: int = 1,
    max_overflow: int = 0,
) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        url, poolclass=poolclass, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout
    )
    try:
        yield engine
    finally:
        await engine.dispose()


async def _select_1(connection: Any) -> Any:
    if isinstance(connection, AsyncConnection):
        return (await connection.execute(text("SELECT 1"))).scalar()
    return await connection.driver_connection.fetchval("SELECT 1")


def _checkout(engine: AsyncEngine) -> Connect:
    """The pool's connection itself, as a repository takes it for a request."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[Any]:
        connection = await engine.raw_connection()
        try:
            yield connection
        finally:
            await greenlet_spawn(connection.close)

    return connect


async def _let_run() -> None:
    """A few passes of the event loop, no clock: enough for tasks just created to get in line.

    A checkout does no I/O before it waits for a connection (``greenlet_spawn`` runs the pool's code at
    once, until ``await_only`` hands the wait to the loop); Python 3.11's ``wait_for`` takes one more pass
    to start the waiting task. A task in line stays there whatever passes follow.
    """
    for _ in range(5):
        await asyncio.sleep(0)


async def _arrival_order(connect: Connect) -> list[str]:
    """Five requests queue behind a held connection; a sixth asks just as it is given back."""
    served: list[str] = []

    async def use(name: str) -> None:
        async with connect() as connection:
            served.append(name)
            await _select_1(connection)

    held, release = asyncio.Event(), asyncio.Event()
    late: list[asyncio.Task[None]] = []

    async def holder() -> None:
        async with connect():
            held.set()
            await release.wait()
            # A request that became runnable just before the connection is given back (in a server:
            # one whose bytes were read in the same event-loop pass): it runs before any waiter resumes.
            late.append(asyncio.create_task(use("newcomer")))

    holding = asyncio.create_task(holder())
    await held.wait()
    waiting = []
    for i in range(5):
        waiting.append(asyncio.create_task(use(f"waiter {i}")))
        await _let_run()  # each one is in line before the next arrives
    assert not any(task.done() for task in waiting)
    release.set()
    await asyncio.gather(holding, *waiting)
    await asyncio.gather(*late)
    return served


def _run(url: str, test: Callable[[AsyncEngine], Awaitable[Any]], **engine: Any) -> Any:
    async def main() -> Any:
        async with _engine(url, **engine) as e:
            return await test(e)

    return asyncio.run(main())


def test_requests_waiting_for_a_connection_are_served_first_come_first_served(database_url: str) -> None:
    order = _run(database_url, lambda engine: _arrival_order(_checkout(engine)))
    assert order == [f"waiter {i}" for i in range(5)] + ["newcomer"]


def test_the_stock_pool_lets_a_newcomer_pass_the_line(database_url: str) -> None:
    """The control for the test above: SQLAlchemy's own pool serves the newcomer before the waiting ones
    (so that test does exercise the race FairAsyncPool is there for)."""
    order = _run(
        database_url, lambda engine: _arrival_order(_checkout(engine)), poolclass=AsyncAdaptedQueuePool
    )
    assert order[0] == "newcomer"


def test_waiting_is_bounded_and_a_timed_out_waiter_frees_its_place(database_url: str) -> None:
    async def test(engine: AsyncEngine) -> None:
        async with engine.connect():
            started = asyncio.get_running_loop().time()
            with pytest.raises(PoolTimeoutError, match=r"no database connection free within 0\.3 s"):
                async with engine.connect():
                    pass
            assert asyncio.get_running_loop().time() - started >= 0.3
            # A waiter that gives up (a client that went away) leaves its place too.
            cancelled = asyncio.create_task(engine.connect().__aenter__())
            await _let_run()
            assert not cancelled.done()  # in line
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
        # The one connection is free again: neither waiter kept it.
        async with engine.connect() as connection:
            assert await _select_1(connection) == 1

    _run(database_url, test, pool_timeout=0.3)


def test_no_overflow_limit_means_nobody_waits_in_line(database_url: str) -> None:
    """``max_overflow=-1`` is SQLAlchemy's "no limit": more connections at once than ``pool_size``."""

    async def test(engine: AsyncEngine) -> None:
        async with contextlib.AsyncExitStack() as stack:
            connections = [await stack.enter_async_context(engine.connect()) for _ in range(4)]
            assert [await _select_1(c) for c in connections] == [1] * 4

    _run(database_url, test, pool_size=2, max_overflow=-1, pool_timeout=0.3)
