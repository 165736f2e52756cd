"""Statements built once, and a repository that runs them on its session's own asyncpg connection."""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import asyncpg
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import event, exc
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import ConnectionPoolEntry, Pool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

ModelT = TypeVar("ModelT", bound=DeclarativeBase)
T = TypeVar("T")

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
# A connection that is gone or unusable: closed socket, server shutdown, or asyncpg's own state left
# broken by a server message that arrived while the connection sat idle in the pool. Not a statement
# timeout (``TimeoutError``, an ``OSError`` too): asyncpg cancels the statement and the connection
# serves on, so ``_run`` lets a timeout through before it gets here.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class Sql:
    """A statement compiled once for asyncpg: its text, and how a params dict becomes its ``$n`` args."""

    text: str
    names: tuple[str, ...]
    fixed: dict[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement) -> Sql:
        compiled = cast("SQLCompiler", statement.compile(dialect=_DIALECT))
        fixed = {name: bind.value for name, bind in compiled.binds.items()}
        return cls(compiled.string, tuple(compiled.positiontup or ()), fixed)

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[n] if n in params else self.fixed[n] for n in self.names]


def row_count(status: str) -> int:
    """The row count of asyncpg's command status, e.g. ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


class _RenewAfterLoss:
    """A pool's listeners (public ``PoolEvents``) that replace, each at its next checkout, the connections
    opened before one of them was found dead: a database restart kills the idle ones too. Each is
    replaced in place (``DisconnectionError`` on checkout: SQLAlchemy reconnects that entry), so the
    pool never holds more than it allows; throwing the pool away instead (``engine.dispose()``) would
    leave the connections in use open outside any pool. A connection opened for the checkout at hand is
    never refused (SQLAlchemy retries a checkout only once)."""

    def __init__(self) -> None:
        self.lost_at = float("-inf")

    def connect(self, _: Any, entry: ConnectionPoolEntry) -> None:
        entry.info[_OPENED_AT] = time.monotonic()
        entry.info[_UNUSED] = True

    def checkout(self, _: Any, entry: ConnectionPoolEntry, __: Any) -> None:
        if entry.info.pop(_UNUSED, False):
            return
        # Entries opened before these listeners existed carry no time: they predate the loss.
        if entry.info.get(_OPENED_AT, float("-inf")) < self.lost_at:
            raise exc.DisconnectionError("opened before a connection of this pool was lost")


_OPENED_AT = "backend.sql.opened_at"
_UNUSED = "backend.sql.unused"
_RENEWERS: weakref.WeakKeyDictionary[Pool, _RenewAfterLoss] = weakref.WeakKeyDictionary()


def renew_pool_connections(pool: Pool) -> None:
    """Have ``pool`` replace the connections opened until now, each at its next checkout."""
    renewer = _RENEWERS.get(pool)
    if renewer is None:
        renewer = _RENEWERS[pool] = _RenewAfterLoss()
        event.listen(pool, "connect", renewer.connect)
        event.listen(pool, "checkout", renewer.checkout)
    renewer.lost_at = time.monotonic()


def _checkout(session: Session) -> tuple[Connection, Any]:
    connection = session.connection()
    return connection, connection.connection.driver_connection


class DriverRepository(SQLAlchemyAsyncRepository[ModelT]):
    """Advanced Alchemy's repository, plus prebuilt statements run on the session's own connection.

    Every inherited method works as usual. The hot paths of a resource use ``fetch_row``,
    ``fetch_rows``, ``fetch_value`` and ``write`` instead: the same session and pooled connection, but
    the statement goes straight to asyncpg, compiled once (``Sql``), one round trip, no BEGIN/COMMIT
    around it (one statement is atomic and durable by itself), rows turned straight into response
    Structs. Measured (bench, 1 worker, 64 connections): AA's ORM path runs list/get/create/toggle at
    0.16-0.38x the raw baseline; SQLAlchemy's execute and per-column result processing are ~40 % of
    the gap to this path.

    Without a transaction of SQLAlchemy's own, asyncpg runs each statement in autocommit (no BEGIN:
    pinned by tests/test_driver_repository.py). An inherited method begins one (SQLAlchemy's autobegin)
    that these statements then join and that nobody commits (AA's default ``before_send`` handler only
    closes the session, which rolls it back): writes go through these methods or ``transaction``.
    """

    _driver: Any = None
    _bound: Connection | None = None

    async def _connection(self) -> Any:
        if self._driver is None:
            # One hop into SQLAlchemy's greenlet instead of the three that ``await session.connection()``
            # and ``get_raw_connection()`` take: the session's connection and asyncpg's under it.
            # ``greenlet_spawn`` is undocumented (it is how AsyncSession calls the sync Session; no
            # upstream promise): tests/test_driver_repository.py pins what we use of it.
            self._bound, self._driver = await greenlet_spawn(
                _checkout, cast("AsyncSession", self.session).sync_session
            )
        return self._driver

    async def _watched(self, statement: Awaitable[T]) -> T:
        """Await one statement on the driver connection, handling a connection that dies under it."""
        try:
            return await statement
        except TimeoutError:
            raise  # the statement was cancelled; the connection is fine (and goes back to the pool)
        except _CONNECTION_LOST as error:
            # SQLAlchemy did not run this statement, so it cannot see the connection die: close this
            # one (the pool opens another in its place), and have the pool renew the others lazily.
            self._driver = None
            if self._bound is not None:
                await greenlet_spawn(self._bound.invalidate, error)
                renew_pool_connections(self._bound.engine.pool)
            raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A transaction of a few statements (rare: one statement is atomic by itself)."""
        async with (await self._connection()).transaction():
            yield

    async def fetch_row(self, sql: Sql, params: dict[str, Any]) -> asyncpg.Record | None:
        driver = await self._connection()
        return await self._watched(driver.fetchrow(sql.text, *sql.args(params)))

    async def fetch_rows(self, sql: Sql, params: dict[str, Any]) -> list[asyncpg.Record]:
        driver = await self._connection()
        return cast("list[asyncpg.Record]", await self._watched(driver.fetch(sql.text, *sql.args(params))))

    async def fetch_value(self, sql: Sql, params: dict[str, Any]) -> Any:
        driver = await self._connection()
        return await self._watched(driver.fetchval(sql.text, *sql.args(params)))

    async def write(self, sql: Sql, params: dict[str, Any]) -> int:
        """Run a write statement; the number of rows it touched."""
        driver = await self._connection()
        return row_count(await self._watched(driver.execute(sql.text, *sql.args(params))))
