"""Every query on tasks. Each method takes the caller's ``user_id`` and each statement filters on it.

Statements are SQLAlchemy Core, compiled once per shape and run on a pooled asyncpg connection
(``backend.connections``): one round trip per statement, no BEGIN/COMMIT pair (a single statement is
atomic and durable by itself), rows turned straight into response Structs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any, NoReturn, cast
from uuid import UUID

import asyncpg
from advanced_alchemy.exceptions import NotFoundError
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn
from uuid_utils.compat import uuid7

from backend.connections import ConnectionQueue, checkout
from backend.errors import VersionMismatch
from backend.tasks.models import Priority, Task
from backend.tasks.schemas import TaskCreate, TaskRead, TaskStats

_t = cast("Table", Task.__table__)
# The SELECT/RETURNING list, in TaskRead's field order, so a row becomes a TaskRead positionally.
_COLUMNS = tuple(_t.c[name] for name in TaskRead.__struct_fields__)
_OWNED = and_(_t.c.id == bindparam("task_id"), _t.c.user_id == bindparam("owner"))
_OWNER = _t.c.user_id == bindparam("owner")
_NOW = bindparam("now", type_=_t.c.updated_at.type)
_IF_MATCH = _t.c.version == any_(bindparam("versions", type_=ARRAY(Integer)))
_BUMP = {"version": _t.c.version + 1, "updated_at": _NOW}
_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
# A connection that is gone or unusable: closed socket, server shutdown, or asyncpg's own state left
# broken by a server message that arrived while the connection sat idle in the pool.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)

SORTABLE = ("created_at", "updated_at", "due_at", "priority", "title")


@dataclass(frozen=True, slots=True)
class Sql:
    """A statement compiled for asyncpg: its text and how to order a params dict into ``$n`` args."""

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


def _completed_at(completed: Any) -> ColumnElement[Any]:
    """``completed_at`` when ``completed`` is set: kept if it already was completed, now if it becomes so."""
    return case((completed, case((_t.c.completed, _t.c.completed_at), else_=_NOW)), else_=None)


def _guarded(statement: Any, if_match: bool) -> Any:
    # The version check rides in the same statement as the write: no window between them.
    return statement.where(_IF_MATCH) if if_match else statement


_GET = Sql.of(select(*_COLUMNS).where(_OWNED))
_EXISTS = Sql.of(select(literal(1)).where(_OWNED))
_INSERT = Sql.of(insert(_t).values({c.name: bindparam(c.name) for c in _COLUMNS}).returning(*_COLUMNS))
_DELETE = {m: Sql.of(_guarded(delete(_t).where(_OWNED), m).returning(_t.c.id)) for m in (False, True)}
_TOGGLE = {
    m: Sql.of(
        _guarded(update(_t).where(_OWNED), m)
        .values(completed=~_t.c.completed, completed_at=case((_t.c.completed, None), else_=_NOW), **_BUMP)
        .returning(*_COLUMNS)
    )
    for m in (False, True)
}
STATS = Sql.of(
    select(
        func.count(),
        func.count().filter(_t.c.completed),
        func.count().filter(~_t.c.completed, _t.c.due_at < _NOW),
    ).where(_OWNER)
)
SET_COMPLETED_ALL = Sql.of(
    update(_t)
    .where(_OWNER, _t.c.completed != bindparam("completed", type_=Boolean()))
    .values(
        completed=bindparam("completed", type_=Boolean()),
        completed_at=_completed_at(bindparam("completed", type_=Boolean())),
        **_BUMP,
    )
)
DELETE_COMPLETED = Sql.of(delete(_t).where(_OWNER, _t.c.completed))


@lru_cache(maxsize=256)
def _update_sql(fields: tuple[str, ...], if_match: bool) -> Sql:
    values: dict[str, Any] = {f: bindparam(f"v_{f}", type_=_t.c[f].type) for f in fields}
    if "completed" in fields:
        values["completed_at"] = _completed_at(bindparam("v_completed", type_=_t.c.completed.type))
    return Sql.of(_guarded(update(_t).where(_OWNED), if_match).values(**values, **_BUMP).returning(*_COLUMNS))


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """The listing's filters, sort and page, already validated."""

    completed: bool | None = None
    priority: Priority | None = None
    tag: str | None = None
    q: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    sort: str = "-created_at"
    limit: int = 100
    offset: int = 0

    def params(self, user_id: str) -> dict[str, Any]:
        q = self.q and "%" + self.q.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
        return {
            "owner": user_id,
            "completed": self.completed,
            "priority": self.priority and self.priority.value,
            "tag": [self.tag],
            "q": q,
            "due_before": self.due_before,
            "due_after": self.due_after,
            "limit": self.limit,
            "offset": self.offset,
        }

    @property
    def shape(self) -> tuple[bool, ...]:
        """Which filters are present: statements are compiled once per shape."""
        values = (self.completed, self.priority, self.tag, self.q, self.due_before, self.due_after)
        return tuple(v is not None for v in values)


DEEP_OFFSET = 500


def list_statements(f: TaskFilter) -> tuple[Sql, Sql]:
    """The page and count statements for ``f``'s combination of filters and sort."""
    return _list_statements(f.shape, f.sort, f.offset >= DEEP_OFFSET)


@lru_cache(maxsize=2048)
def _list_statements(shape: tuple[bool, ...], sort: str, deep: bool) -> tuple[Sql, Sql]:
    has_completed, has_priority, has_tag, has_q, has_before, has_after = shape
    where: list[ColumnElement[bool]] = [_OWNER]
    if has_completed:
        where.append(_t.c.completed == bindparam("completed", type_=Boolean()))
    if has_priority:
        where.append(_t.c.priority == bindparam("priority"))
    if has_tag:
        where.append(_t.c.tags.contains(bindparam("tag", type_=_t.c.tags.type)))
    if has_q:
        # The pattern is escaped in TaskFilter.params: % and _ in the search text are literal.
        pattern = bindparam("q", type_=String())
        where.append(or_(_t.c.title.ilike(pattern, escape="/"), _t.c.description.ilike(pattern, escape="/")))
    if has_after:
        where.append(_t.c.due_at >= bindparam("due_after", type_=_t.c.due_at.type))
    if has_before:
        where.append(_t.c.due_at < bindparam("due_before", type_=_t.c.due_at.type))
    count = select(func.count()).select_from(_t).where(*where)
    # The total rides along as the first column (PostgreSQL computes the uncorrelated subquery once):
    # one round trip for the page and X-Total-Count. The plain count is for a page past the end.
    total = count.scalar_subquery().label("total")
    if not deep:
        page = select(total, *_COLUMNS).where(*where).order_by(*_order(sort))
        page = page.limit(bindparam("limit")).offset(bindparam("offset"))
        return Sql.of(page), Sql.of(count)
    # A deep page skips thousands of rows: walk them as ids only (an index-only scan where an index
    # matches), then fetch the page's full rows by primary key.
    ids = select(_t.c.id).where(*where).order_by(*_order(sort))
    ids_page = ids.limit(bindparam("limit")).offset(bindparam("offset")).subquery()
    page = (
        select(total, *_COLUMNS)
        .select_from(_t.join(ids_page, _t.c.id == ids_page.c.id))
        .where(_OWNER)
        .order_by(*_order(sort))
    )
    return Sql.of(page), Sql.of(count)


def _order(sort: str) -> list[Any]:
    descending = sort.startswith("-")
    column = _t.c[sort.removeprefix("-")]
    key = column.desc() if descending else column.asc()
    # Tasks without a due date go last either way; id breaks ties so pages never overlap.
    if column is _t.c.due_at:
        key = key.nulls_last()
    return [key, _t.c.id.desc() if descending else _t.c.id.asc()]


class TaskRepository(SQLAlchemyAsyncRepository[Task]):
    model_type = Task


class TaskService(SQLAlchemyAsyncRepositoryService[Task, TaskRepository]):
    """Tasks of one user at a time."""

    repository_type = TaskRepository

    def __init__(
        self,
        session: AsyncSession | None = None,
        *,
        connections: ConnectionQueue | None = None,
        **repo_kwargs: Any,
    ) -> None:
        # The app passes its ConnectionQueue: the hot methods below need a pooled connection, not a
        # session, and building AA's repository costs more than a query. With a session, the generic
        # Advanced Alchemy methods (self.repository, list, get...) work as usual.
        if session is not None:
            super().__init__(session=session, **repo_kwargs)
        bind = connections.engine if connections is not None else (session.bind if session else None)
        if not isinstance(bind, AsyncEngine):
            raise TypeError("TaskService needs a ConnectionQueue, or a session bound to an AsyncEngine")
        self._engine = bind
        self._connect = connections.connect if connections is not None else partial(checkout, bind)

    async def _run(self, sql: Sql, params: dict[str, Any], method: str) -> Any:
        async with self._connect() as connection:
            try:
                return await getattr(connection.driver_connection, method)(sql.text, *sql.args(params))
            except _CONNECTION_LOST:
                # SQLAlchemy did not run this statement, so it cannot see the connection die: drop it,
                # and the idle ones that died with it (a database restart), so the next request reconnects.
                await greenlet_spawn(connection.invalidate)
                await self._engine.dispose()
                raise

    async def _one(self, sql: Sql, params: dict[str, Any]) -> asyncpg.Record | None:
        return await self._run(sql, params, "fetchrow")

    async def get_task(self, user_id: str, task_id: str) -> TaskRead:
        row = await self._one(_GET, {"task_id": _parse_id(task_id), "owner": user_id})
        if row is None:
            raise NotFoundError("Task not found")
        return TaskRead(*row)

    async def add_task(self, user_id: str, data: TaskCreate) -> TaskRead:
        now = datetime.now(UTC)
        values = {
            "id": uuid7(),
            "user_id": user_id,
            "title": data.title,
            "description": data.description,
            "completed": data.completed,
            "completed_at": now if data.completed else None,
            "priority": data.priority.value,
            "tags": data.tags,
            "due_at": data.due_at,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        return TaskRead(*cast("asyncpg.Record", await self._one(_INSERT, values)))

    async def update_task(
        self, user_id: str, task_id: str, changes: dict[str, Any], if_match: Sequence[int] | None = None
    ) -> TaskRead:
        """Apply ``changes``; an empty change set returns the task as it is (still checking ``If-Match``)."""
        params = {f"v_{k}": v.value if isinstance(v, Priority) else v for k, v in changes.items()}
        sql = _update_sql(tuple(sorted(changes)), if_match is not None) if changes else None
        return await self._write(sql, user_id, task_id, if_match, params)

    async def set_completed(
        self, user_id: str, task_id: str, completed: bool | None, if_match: Sequence[int] | None = None
    ) -> TaskRead:
        """Set ``completed``, or toggle it atomically when ``completed`` is None."""
        if completed is None:
            return await self._write(_TOGGLE[if_match is not None], user_id, task_id, if_match)
        return await self.update_task(user_id, task_id, {"completed": completed}, if_match)

    async def delete_task(self, user_id: str, task_id: str, if_match: Sequence[int] | None = None) -> None:
        params = {"task_id": _parse_id(task_id), "owner": user_id, "versions": list(if_match or ())}
        if await self._one(_DELETE[if_match is not None], params) is None:
            await self._raise_missing_or_stale(params, if_match)

    async def _write(
        self,
        sql: Sql | None,
        user_id: str,
        task_id: str,
        if_match: Sequence[int] | None,
        extra: dict[str, Any] | None = None,
    ) -> TaskRead:
        params = {"task_id": _parse_id(task_id), "owner": user_id, "now": datetime.now(UTC), **(extra or {})}
        params["versions"] = list(if_match or ())
        if sql is None:  # nothing to change: the task as it is, if it exists and matches
            row = await self._one(_GET, params)
            if row is not None and if_match is not None and row["version"] not in if_match:
                raise VersionMismatch
        else:
            row = await self._one(sql, params)
        if row is None:
            await self._raise_missing_or_stale(params, if_match)
        return TaskRead(*cast("asyncpg.Record", row))

    async def _raise_missing_or_stale(
        self, params: dict[str, Any], if_match: Sequence[int] | None
    ) -> NoReturn:
        if if_match is not None and await self._one(_EXISTS, params) is not None:
            raise VersionMismatch
        raise NotFoundError("Task not found")

    async def list_tasks(self, user_id: str, f: TaskFilter) -> tuple[list[TaskRead], int]:
        """One page of the caller's tasks and the number matching the whole filter."""
        page_sql, count_sql = list_statements(f)
        params = f.params(user_id)
        rows = await self._run(page_sql, params, "fetch")
        if rows:
            total = rows[0][0]
        elif f.offset == 0:
            total = 0
        else:
            total = await self._run(count_sql, params, "fetchval")
        return [TaskRead(*r[1:]) for r in rows], total

    async def stats(self, user_id: str) -> TaskStats:
        row = await self._one(STATS, {"owner": user_id, "now": datetime.now(UTC)})
        total, completed, overdue = cast("asyncpg.Record", row)
        return TaskStats(total=total, completed=completed, active=total - completed, overdue=overdue)

    async def complete_all(self, user_id: str, completed: bool) -> int:
        params = {"owner": user_id, "completed": completed, "now": datetime.now(UTC)}
        return _row_count(await self._run(SET_COMPLETED_ALL, params, "execute"))

    async def delete_completed(self, user_id: str) -> int:
        return _row_count(await self._run(DELETE_COMPLETED, {"owner": user_id}, "execute"))


def _row_count(status: str) -> int:
    """asyncpg's command status, e.g. ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _parse_id(task_id: str) -> UUID:
    # A string that is not a UUID names no task: the same 404 as a missing one.
    try:
        return UUID(task_id)
    except ValueError:
        raise NotFoundError("Task not found") from None
