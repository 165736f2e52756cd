"""Every statement on ``tasks``. Each takes the caller's ``user_id`` and filters on it.

Statements are SQLAlchemy Core on ``Task.__table__`` (on the mapped class, ``insert``/``update`` take the
ORM bulk path: ~2 ms each), built and compiled once per shape (``backend.sql.Sql``), run by
``TaskRepository`` on its session's own asyncpg connection.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    String,
    Table,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)

from backend.data.repository import OwnedRepository
from backend.data.statements import OwnedTable
from backend.idempotency import Once, key_params, run_once, with_key
from backend.sql import Sql
from backend.tasks.filters import TaskFilter
from backend.tasks.models import Task
from backend.tasks.schemas import TaskRead, TaskStats

_t = cast("Table", Task.__table__)
_COMPLETED = bindparam("completed", type_=Boolean())


def _completed_at(completed: Any) -> ColumnElement[Any]:
    """``completed_at`` when ``completed`` is set: kept if it already was completed, now if it becomes so."""
    return case((completed, case((_t.c.completed, _t.c.completed_at), else_=TASKS.now)), else_=None)


def _derived(values: dict[str, Any]) -> None:
    if "completed" in values:
        values["completed_at"] = _completed_at(values["completed"])


# The SELECT/RETURNING list follows TaskRead's field order, so a row becomes a TaskRead positionally.
TASKS = OwnedTable(_t, TaskRead.__struct_fields__, "task_id", derived=_derived, client_timestamps=("due_at",))
_CALLERS = TASKS.callers_rows
_COLUMNS = TASKS.columns


def _locked_in_order(*where: ColumnElement[bool]) -> Any:
    """Ids of the rows a bulk write will change, locked in id order.

    Two bulk writes of one user that lock the same rows in different orders deadlock (seen: concurrent
    complete-all on 20,000 tasks, 58 of ~300 requests). Locking through ``ORDER BY id FOR UPDATE`` makes
    every bulk write take the locks in one order: the second one waits instead.
    """
    return select(_t.c.id).where(*where).order_by(_t.c.id).with_for_update().scalar_subquery()


_TOGGLE = {
    m: Sql.of(
        TASKS.update(
            {"completed": ~_t.c.completed, "completed_at": case((_t.c.completed, None), else_=TASKS.now)}, m
        )
    )
    for m in (False, True)
}
STATS = Sql.of(
    select(
        func.count(),
        func.count().filter(_t.c.completed),
        func.count().filter(~_t.c.completed, _t.c.due_at < TASKS.now),
    ).where(_CALLERS)
)
_SET_COMPLETED_ALL_STATEMENT = (
    update(_t)
    .where(_CALLERS, _t.c.id.in_(_locked_in_order(_CALLERS, _t.c.completed != _COMPLETED)))
    .values(completed=_COMPLETED, completed_at=_completed_at(_COMPLETED), **TASKS.bump)
)
SET_COMPLETED_ALL = Sql.of(_SET_COMPLETED_ALL_STATEMENT)
DELETE_COMPLETED = Sql.of(delete(_t).where(_CALLERS, _t.c.id.in_(_locked_in_order(_CALLERS, _t.c.completed))))


def _count(changed: Any) -> Any:
    return select(func.count()).select_from(changed).scalar_subquery()


_SET_COMPLETED_ALL_ONCE = with_key(
    _SET_COMPLETED_ALL_STATEMENT.returning(_t.c.id),
    # One row whatever the count; the stored body is the one the API sends: {"updated":N}.
    key_row=lambda changed: (select(literal(1)).subquery(), func.concat('{"updated":', _count(changed), "}")),
    result=lambda changed: select(_count(changed)),
)


DEEP_OFFSET = 500


def list_statements(query: TaskFilter) -> tuple[Sql, Sql]:
    """The page and count statements for ``query``'s combination of filters and sort."""
    return _list_statements(query.shape, query.sort, query.offset >= DEEP_OFFSET)


@lru_cache(maxsize=2048)
def _list_statements(shape: tuple[bool, ...], sort: str, deep: bool) -> tuple[Sql, Sql]:
    has_completed, has_priority, has_tag, has_q, has_before, has_after = shape
    where: list[ColumnElement[bool]] = [_CALLERS]
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
        .where(_CALLERS)
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


class TaskRepository(OwnedRepository[Task, TaskRead]):
    """Tasks, always of one owner. ``None`` or ``False`` where no such task is the owner's."""

    model_type = Task
    owned = TASKS
    read_type = TaskRead

    async def set_completed_all_once(self, user_id: str, completed: bool, now: datetime, once: Once) -> int:
        params = {"owner": user_id, "completed": completed, "now": now, **key_params(user_id, once, 200)}
        return int(await run_once(self, user_id, once, _SET_COMPLETED_ALL_ONCE, params))

    async def toggle_task(
        self, user_id: str, task_id: UUID, now: datetime, if_match: tuple[int, ...] | None
    ) -> TaskRead | None:
        params = {"task_id": task_id, "owner": user_id, "now": now, "versions": list(if_match or ())}
        return self._read(await self.fetch_row(_TOGGLE[if_match is not None], params))

    async def page(self, user_id: str, query: TaskFilter) -> tuple[list[TaskRead], int]:
        """One page of the filter and the number of tasks matching it."""
        page_sql, count_sql = list_statements(query)
        params = query.params(user_id)
        rows = await self.fetch_rows(page_sql, params)
        if rows:
            total = int(rows[0][0])
        elif query.offset == 0:
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
