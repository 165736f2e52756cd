"""Database connections go to requests in arrival order, and nobody waits past the pool timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection

from backend.connections import ConnectionQueue, checkout

Connect = Callable[[], AbstractAsyncContextManager[PoolProxiedConnection]]


@asynccontextmanager
async def _engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=30)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _select_1(connection: PoolProxiedConnection) -> Any:
    assert connection.driver_connection is not None
    return await connection.driver_connection.fetchval("SELECT 1")


async def _arrival_order(connect: Connect) -> list[str]:
    """Five requests queue behind a held connection; a sixth asks just as it is given back."""
    served: list[str] = []

    async def use(name: str) -> None:
        async with connect() as connection:
            served.append(name)
            await _select_1(connection)

    release = asyncio.Event()
    late: list[asyncio.Task[None]] = []

    async def holder() -> None:
        async with connect():
            await release.wait()
            # A request that became runnable just before the connection is given back (in a server:
            # one whose bytes were read in the same event-loop pass): it runs before any waiter resumes.
            late.append(asyncio.create_task(use("newcomer")))

    holding = asyncio.create_task(holder())
    await asyncio.sleep(0.1)
    waiting = []
    for i in range(5):
        waiting.append(asyncio.create_task(use(f"waiter {i}")))
        await asyncio.sleep(0.01)  # each one is in line before the next arrives
    release.set()
    await asyncio.gather(holding, *waiting)
    await asyncio.gather(*late)
    return served


def _run(url: str, test: Callable[[AsyncEngine], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with _engine(url) as engine:
            return await test(engine)

    return asyncio.run(main())


def test_requests_waiting_for_a_connection_are_served_first_come_first_served(database_url: str) -> None:
    order = _run(database_url, lambda engine: _arrival_order(ConnectionQueue(engine, 1, 30).connect))
    assert order == [f"waiter {i}" for i in range(5)] + ["newcomer"]


def test_the_plain_pool_lets_a_newcomer_pass_the_line(database_url: str) -> None:
    """The control for the test above: SQLAlchemy's pool alone serves the newcomer before the waiting ones
    (so that test does exercise the race ConnectionQueue is there for)."""
    order = _run(database_url, lambda engine: _arrival_order(partial(checkout, engine)))
    assert order[0] == "newcomer"


def test_waiting_is_bounded_and_a_timed_out_waiter_frees_its_place(database_url: str) -> None:
    async def test(engine: AsyncEngine) -> None:
        queue = ConnectionQueue(engine, 1, 0.3)
        async with queue.connect():
            started = asyncio.get_running_loop().time()
            with pytest.raises(PoolTimeoutError, match=r"no database connection free within 0\.3 s"):
                async with queue.connect():
                    pass
            assert 0.3 <= asyncio.get_running_loop().time() - started < 5
            # A waiter that gives up (a client that went away) leaves its place too.
            cancelled = asyncio.create_task(queue.connect().__aenter__())
            await asyncio.sleep(0.05)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
        # The one connection is free again: neither waiter kept it.
        async with queue.connect() as connection:
            assert await _select_1(connection) == 1

    _run(database_url, test)
