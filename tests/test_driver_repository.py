"""Pins what ``backend.sql.DriverRepository`` relies on beyond SQLAlchemy's documented API.

* ``sqlalchemy.util.greenlet_spawn`` (undocumented; how AsyncSession calls the sync Session) runs a
  sync function that awaits through ``await_only`` and gives back its result or its exception.
* A statement sent straight to the session's asyncpg connection runs without a BEGIN: checking the
  connection out does not begin a transaction (SQLAlchemy's asyncpg adapter begins one lazily, at
  its own first statement), so the statement commits by itself, even when the session is then closed
  without a commit.
* Once an inherited (SQLAlchemy-executed) method has run, its transaction is open and our statements
  join it; closing the session rolls both back. Hence: writes go through the driver methods.

If one of these fails after an upgrade, read the upgrade's changelog for the asyncpg adapter's
transaction handling and ``greenlet_spawn`` before changing the code.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import asyncpg
import pytest
from sqlalchemy import Table, bindparam, insert
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.util import await_only, greenlet_spawn

from backend.sql import DriverRepository, Sql

TABLE = f"driver_pin_{uuid.uuid4().hex[:8]}"


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]


class NoteRepository(DriverRepository[Note]):
    model_type = Note


ADD = Sql.of(insert(cast("Table", Note.__table__)).values(id=bindparam("id"), body=bindparam("body")))


def test_greenlet_spawn_runs_a_sync_function_that_awaits() -> None:
    def sync(value: int) -> int:
        return await_only(asyncio.sleep(0, result=value)) + 1

    def fails() -> None:
        await_only(asyncio.sleep(0))
        raise LookupError("from inside")

    async def run() -> None:
        assert await greenlet_spawn(sync, 41) == 42
        with pytest.raises(LookupError, match="from inside"):
            await greenlet_spawn(fails)

    asyncio.run(run())


async def _rows(dsn: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(f"SELECT id, body FROM {TABLE} ORDER BY id")]  # noqa: S608 - our own name
    finally:
        await conn.close()


async def _scenario(url: str, dsn: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        async with AsyncSession(engine) as session:
            repo = NoteRepository(session=session)
            assert await repo.write(ADD, {"id": 1, "body": "alone"}) == 1
            driver = await repo._connection()
            assert not driver.is_in_transaction()  # no BEGIN was sent: the insert committed by itself
            assert await _rows(dsn) == [(1, "alone")]  # another connection sees it before any commit
        assert await _rows(dsn) == [(1, "alone")]  # and closing the session did not undo it

        async with AsyncSession(engine) as session:
            repo = NoteRepository(session=session)
            assert await repo.count() == 1  # SQLAlchemy executes this one: its transaction begins
            assert await repo.write(ADD, {"id": 2, "body": "joined"}) == 1
            assert (await repo._connection()).is_in_transaction()
        assert await _rows(dsn) == [(1, "alone")]  # the close rolled the joined insert back
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
        await engine.dispose()


def test_a_single_statement_on_the_driver_connection_runs_without_begin(database_url: str) -> None:
    asyncio.run(_scenario(database_url, database_url.replace("+asyncpg", "")))
