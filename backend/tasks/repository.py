"""Every statement on ``tasks``. Each takes the caller's ``user_id`` and filters on it.

Statements are SQLAlchemy Core on ``Task.__table__`` (on the mapped class, ``insert``/``update`` take the
ORM bulk path: ~2 ms each), built and compiled once per shape (``backend.sql.Sql``), run by
``TaskRepository`` on its session's own asyncpg connection.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, cast
from uuid import UUID

import asyncpg
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

from backend.idempotency import KEY_CONSTRAINT, Once, StoredResponse, claim, key_insert, key_params, stored
from backend.sql import DriverRepository, Sql
from backend.tasks.filters import TaskFilter
from backend.tasks.models import Task
from backend.tasks.schemas import TaskRead, TaskStats

_t = cast("Table", Task.__table__)
# The SELECT/RETURNING list, in TaskRead's field order, so a row becomes a TaskRead positionally.
_COLUMNS = tuple(_t.c[name] for name in TaskRead.__struct_fields__)
_OWNED = and_(_t.c.id == bindparam("task_id"), _t.c.user_id == bindparam("owner"))
_OWNER = _t.c.user_id == bindparam("owner")
_NOW = bindparam("now", type_=_t.c.updated_at.type)
_IF_MATCH = _t.c.version == any_(bindparam("versions", type_=ARRAY(Integer)))
_BUMP = {"version": _t.c.version + 1, "updated_at": _NOW}
_COMPLETED = bindparam("completed", type_=Boolean())


def _completed_at(completed: Any) -> ColumnElement[Any]:
    """``completed_at`` when ``completed`` is set: kept if it already was completed, now if it becomes so."""
    return case((completed, case((_t.c.completed, _t.c.completed_at), else_=_NOW)), else_=None)


def _guarded(statement: Any, if_match: bool) -> Any:
    # The version check rides in the same statement as the write: no window between them.
    return statement.where(_IF_MATCH) if if_match else statement


def _locked_in_order(*where: ColumnElement[bool]) -> Any:
    """Ids of the rows a bulk write will change, locked in id order.

    Two bulk writes of one user that lock the same rows in different orders deadlock (seen: concurrent
    complete-all on 20,000 tasks, 58 of ~300 requests). Locking through ``ORDER BY id FOR UPDATE`` makes
    every bulk write take the locks in one order: the second one waits instead.
    """
    return select(_t.c.id).where(*where).order_by(_t.c.id).with_for_update().scalar_subquery()


_GET = Sql.of(select(*_COLUMNS).where(_OWNED))
_EXISTS = Sql.of(select(literal(1)).where(_OWNED))
# The quota check rides in the insert: past ``max_tasks`` the statement inserts nothing.
_INSERT_STATEMENT = (
    insert(_t)
    .from_select(
        [c.name for c in _COLUMNS],
        select(*(bindparam(c.name, type_=c.type) for c in _COLUMNS)).where(
            select(func.count()).select_from(_t).where(_OWNER).scalar_subquery() < bindparam("max_tasks")
        ),
    )
    .returning(*_COLUMNS)
)
_INSERT = Sql.of(_INSERT_STATEMENT)
_DELETE = {m: Sql.of(_guarded(delete(_t).where(_OWNED), m).returning(_t.c.version)) for m in (False, True)}
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
_SET_COMPLETED_ALL_STATEMENT = (
    update(_t)
    .where(_OWNER, _t.c.id.in_(_locked_in_order(_OWNER, _t.c.completed != _COMPLETED)))
    .values(completed=_COMPLETED, completed_at=_completed_at(_COMPLETED), **_BUMP)
)
SET_COMPLETED_ALL = Sql.of(_SET_COMPLETED_ALL_STATEMENT)
DELETE_COMPLETED = Sql.of(delete(_t).where(_OWNER, _t.c.id.in_(_locked_in_order(_OWNER, _t.c.completed))))


def _with_key(change: Any, key_row: Callable[[Any], Any], result: Callable[[Any], Any]) -> Sql:
    """``change`` and the row of its Idempotency-Key as one statement: both happen, or neither.

    ``key_row(changed)`` is what the key row is made from (one row: none when nothing may be stored).
    """
    changed = change.cte("changed")
    source, body = key_row(changed)
    return Sql.of(result(changed).add_cte(key_insert(source, body)))


def _count(changed: Any) -> Any:
    return select(func.count()).select_from(changed).scalar_subquery()


_INSERT_ONCE = _with_key(
    _INSERT_STATEMENT,
    # The task's row, when the quota let it in; the body was built before (every value is known).
    key_row=lambda changed: (changed, bindparam("body", type_=String())),
    result=lambda changed: select(*changed.c),
)
_SET_COMPLETED_ALL_ONCE = _with_key(
    _SET_COMPLETED_ALL_STATEMENT.returning(_t.c.id),
    # One row whatever the count; the stored body is the one the API sends: {"updated":N}.
    key_row=lambda changed: (select(literal(1)).subquery(), func.concat('{"updated":', _count(changed), "}")),
    result=lambda changed: select(_count(changed)),
)


@lru_cache(maxsize=256)
def _update_sql(fields: tuple[str, ...], if_match: bool) -> Sql:
    values: dict[str, Any] = {f: bindparam(f"v_{f}", type_=_t.c[f].type) for f in fields}
    if "completed" in fields:
        values["completed_at"] = _completed_at(bindparam("v_completed", type_=_t.c.completed.type))
    return Sql.of(_guarded(update(_t).where(_OWNED), if_match).values(**values, **_BUMP).returning(*_COLUMNS))


DEEP_OFFSET = 500


def list_statements(f: TaskFilter) -> tuple[Sql, Sql]:
    """The page and count statements for ``f``'s combination of filters and sort."""
    return _list_statements(f.shape, f.sort, f.offset >= DEEP_OFFSET)


@lru_cache(maxsize=2048)
def _list_statements(shape: tuple[bool, ...], sort: str, deep: bool) -> tuple[Sql, Sql]:
    has_completed, has_priority, has_tag, has_q, has_before, has_after = shape
    where: list[ColumnElement[bool]] = [_OWNER]
    if has_completed:
        where.append(_t.c.completed == _COMPLETED)
    if has_priority:
        where.append(_t.c.priority == bindparam("priority"))
    if has_tag:
        where.append(_t.c.tags.contains(bindparam("tag", type_=ARRAY(String()))))
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


class TaskRepository(DriverRepository[Task]):
    """Tasks, always of one owner. ``None`` or ``False`` where no such task is the owner's."""

    model_type = Task

    async def fetch_task(self, user_id: str, task_id: UUID) -> TaskRead | None:
        row = await self.fetch_row(_GET, {"task_id": task_id, "owner": user_id})
        return None if row is None else TaskRead(*row)

    async def task_exists(self, user_id: str, task_id: UUID) -> bool:
        return await self.fetch_row(_EXISTS, {"task_id": task_id, "owner": user_id}) is not None

    async def insert_task(self, values: dict[str, Any], max_tasks: int) -> TaskRead | None:
        """The new task; None when its owner already holds ``max_tasks``."""
        row = await self.fetch_row(_INSERT, {**values, "owner": values["user_id"], "max_tasks": max_tasks})
        return None if row is None else TaskRead(*row)

    async def insert_task_once(
        self, values: dict[str, Any], max_tasks: int, once: Once, response: StoredResponse
    ) -> bool:
        """Insert the task and store ``response`` under ``once``'s key, in one statement; False when the
        quota refused it (then nothing is stored). Raises the key's outcome when it was used before."""
        owner = values["user_id"]
        params = {**values, "owner": owner, "max_tasks": max_tasks, "body": response.body}
        params.update(key_params(owner, once, response.status_code, response.location, response.etag))
        return await self._once(owner, once, _INSERT_ONCE, params) is not None

    async def set_completed_all_once(self, user_id: str, completed: bool, now: datetime, once: Once) -> int:
        params = {"owner": user_id, "completed": completed, "now": now, **key_params(user_id, once, 200)}
        return int(await self._once(user_id, once, _SET_COMPLETED_ALL_ONCE, params))

    async def _once(self, user_id: str, once: Once, sql: Sql, params: dict[str, Any]) -> Any:
        try:
            async with self.transaction():
                await claim(self, user_id, once)
                return await self.fetch_value(sql, params)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != KEY_CONSTRAINT:
                raise
        # Another request with this key committed between our lock and our insert: its answer is ours.
        raise await stored(self, user_id, once)

    async def update_task(
        self,
        user_id: str,
        task_id: UUID,
        changes: dict[str, Any],
        now: datetime,
        if_match: tuple[int, ...] | None,
    ) -> TaskRead | None:
        """Apply ``changes`` (column -> value) and bump the version, if the task matches ``if_match``."""
        params = {f"v_{k}": v for k, v in changes.items()}
        params.update(task_id=task_id, owner=user_id, now=now, versions=list(if_match or ()))
        row = await self.fetch_row(_update_sql(tuple(sorted(changes)), if_match is not None), params)
        return None if row is None else TaskRead(*row)

    async def toggle_task(
        self, user_id: str, task_id: UUID, now: datetime, if_match: tuple[int, ...] | None
    ) -> TaskRead | None:
        params = {"task_id": task_id, "owner": user_id, "now": now, "versions": list(if_match or ())}
        row = await self.fetch_row(_TOGGLE[if_match is not None], params)
        return None if row is None else TaskRead(*row)

    async def delete_task(self, user_id: str, task_id: UUID, if_match: tuple[int, ...] | None) -> int | None:
        """The deleted task's version."""
        params = {"task_id": task_id, "owner": user_id, "versions": list(if_match or ())}
        row = await self.fetch_row(_DELETE[if_match is not None], params)
        return None if row is None else int(row[0])

    async def page(self, user_id: str, f: TaskFilter) -> tuple[list[TaskRead], int]:
        """One page of the filter and the number of tasks matching it."""
        page_sql, count_sql = list_statements(f)
        params = f.params(user_id)
        rows = await self.fetch_rows(page_sql, params)
        if rows:
            total = int(rows[0][0])
        elif f.offset == 0:
            total = 0
        else:
            total = int(await self.fetch_value(count_sql, params))
        return [TaskRead(*r[1:]) for r in rows], total

    async def stats(self, user_id: str, now: datetime) -> TaskStats:
        total, completed, overdue = cast(
            "tuple[int, int, int]", await self.fetch_row(STATS, {"owner": user_id, "now": now})
        )
        return TaskStats(total=total, completed=completed, active=total - completed, overdue=overdue)

    async def set_completed_all(self, user_id: str, completed: bool, now: datetime) -> int:
        return await self.write(SET_COMPLETED_ALL, {"owner": user_id, "completed": completed, "now": now})

    async def delete_completed(self, user_id: str) -> int:
        return await self.write(DELETE_COMPLETED, {"owner": user_id})
