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

import asyncpg
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

from backend.data.ordering import move_statement
from backend.data.repository import OwnedRepository
from backend.data.statements import OwnedTable
from backend.idempotency import Once, key_params, run_once, with_key
from backend.lists.models import TaskList
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
TASKS = OwnedTable(
    _t,
    TaskRead.__struct_fields__,
    "task_id",
    derived=_derived,
    client_timestamps=("due_at",),
    # A new task's place among its siblings, and a subtask's list (its parent's), are the database's.
    decided_on_insert=("list_id", "position"),
)
_MOVE = move_statement(_t, TASKS.columns, ("list_id", "parent_id"))
_CALLERS = TASKS.callers_rows
_l = cast("Table", TaskList.__table__)
_PARENT_LIST = Sql.of(
    select(_t.c.list_id).where(_t.c.id == bindparam("parent_id", type_=_t.c.id.type), _CALLERS)
)
# What a list_id or parent_id filter may name: a list of the caller's; a top-level task of the caller's.
_GROUP_EXISTS = {
    "list_id": Sql.of(
        select(literal(1)).where(_l.c.id == bindparam("list_id"), _l.c.user_id == bindparam("owner"))
    ),
    "parent_id": Sql.of(
        select(literal(1)).where(
            _t.c.id == bindparam("parent_id", type_=_t.c.id.type), _CALLERS, _t.c.parent_id.is_(None)
        )
    ),
}
_COLUMNS = TASKS.columns


def _locked_in_order(*where: ColumnElement[bool]) -> Any:
    """Ids of the rows a bulk write will change, locked in id order.

    Two bulk writes of one user that lock the same rows in different orders deadlock (seen: concurrent
    complete-all on 20,000 tasks, 58 of ~300 requests). Locking through ``ORDER BY id FOR UPDATE`` makes
    every bulk write take the locks in one order: the second one waits instead.
    """
    return select(_t.c.id).where(*where).order_by(_t.c.id).with_for_update().scalar_subquery()


def in_group(column: str, kind: object) -> list[ColumnElement[bool]]:
    """The filter on ``list_id`` or ``parent_id``: none, the null group (inbox, top level), or an id."""
    if kind is None:
        return []
    if kind == "id":
        return [_t.c[column] == bindparam(column, type_=_t.c[column].type)]
    return [_t.c[column].is_(None)]


_TOGGLE = {
    m: Sql.of(
        TASKS.update(
            {"completed": ~_t.c.completed, "completed_at": case((_t.c.completed, None), else_=TASKS.now)}, m
        )
    )
    for m in (False, True)
}


def _count(changed: Any) -> Any:
    return select(func.count()).select_from(changed).scalar_subquery()


# Per list filter (None: every task; "inbox"; "id": the list :list_id), the bulk statements.
_KINDS: tuple[str | None, ...] = (None, "inbox", "id")
_STATS = {
    kind: Sql.of(
        select(
            func.count(),
            func.count().filter(_t.c.completed),
            func.count().filter(~_t.c.completed, _t.c.due_at < TASKS.now),
        ).where(_CALLERS, *in_group("list_id", kind))
    )
    for kind in _KINDS
}


def _set_completed_all(kind: object) -> Any:
    changing = [_CALLERS, *in_group("list_id", kind), _t.c.completed != _COMPLETED]
    return (
        update(_t)
        .where(_CALLERS, TASKS.writing, _t.c.id.in_(_locked_in_order(*changing)))
        .values(completed=_COMPLETED, completed_at=_completed_at(_COMPLETED), **TASKS.bump)
    )


_SET_COMPLETED_ALL = {kind: Sql.of(_set_completed_all(kind)) for kind in _KINDS}
_SET_COMPLETED_ALL_ONCE = {
    kind: with_key(
        _set_completed_all(kind).returning(_t.c.id),
        # One row whatever the count; the stored body is the one the API sends: {"updated":N}.
        key_row=lambda changed: (
            select(literal(1)).subquery(),
            func.concat('{"updated":', _count(changed), "}"),
        ),
        result=lambda changed: select(_count(changed)),
    )
    for kind in _KINDS
}
_DELETE_COMPLETED = {
    kind: Sql.of(
        delete(_t).where(
            _CALLERS,
            TASKS.writing,
            _t.c.id.in_(_locked_in_order(_CALLERS, *in_group("list_id", kind), _t.c.completed)),
        )
    )
    for kind in _KINDS
}
# Every task of the caller (what the listing tests explain).
STATS, SET_COMPLETED_ALL, DELETE_COMPLETED = _STATS[None], _SET_COMPLETED_ALL[None], _DELETE_COMPLETED[None]


DEEP_OFFSET = 500


def list_statements(query: TaskFilter) -> tuple[Sql, Sql]:
    """The page and count statements for ``query``'s combination of filters and sort."""
    return _list_statements(query.shape, query.sort, query.offset >= DEEP_OFFSET)


@lru_cache(maxsize=2048)
def _list_statements(shape: tuple[object, ...], sort: str, deep: bool) -> tuple[Sql, Sql]:
    has_completed, has_priority, has_tag, has_q, has_before, has_after, in_list, under = shape
    where = [_CALLERS, *in_group("list_id", in_list), *in_group("parent_id", under)]
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

    async def set_completed_all_once(
        self, user_id: str, completed: bool, now: datetime, once: Once, in_list: UUID | str | None = None
    ) -> int:
        params = {"owner": user_id, "completed": completed, "now": now, **key_params(user_id, once, 200)}
        sql = _SET_COMPLETED_ALL_ONCE[_kind(in_list)]
        await self.lock_owner(user_id)
        return int((await run_once(self, user_id, once, sql, {**params, "list_id": _id(in_list)}))[0])

    async def toggle_task(
        self, user_id: str, task_id: UUID, now: datetime, if_match: tuple[int, ...] | None
    ) -> TaskRead | None:
        params = {"task_id": task_id, "owner": user_id, "now": now, "versions": list(if_match or ())}
        return self._read(await self.fetch_row(_TOGGLE[if_match is not None], params))

    async def move_task(
        self,
        user_id: str,
        task_id: UUID,
        where: dict[str, Any],
        now: datetime,
        if_match: tuple[int, ...] | None,
    ) -> TaskRead:
        """Place the task right after ``where["after"]`` in the group ``where`` names (a key left out: as
        it is), in one round trip; the database refuses what breaks a rule (``backend.data.ordering``)."""
        params = {"owner": user_id, "target": task_id, "after": where["after"], "now": now}
        params["versions"] = None if if_match is None else list(if_match)
        for name in ("list_id", "parent_id"):
            params[f"{name}_given"], params[name] = name in where, where.get(name)
        return TaskRead(*cast("asyncpg.Record", await self.fetch_row(_MOVE, params)))

    async def parent_list(self, user_id: str, parent_id: UUID) -> UUID | None:
        """The list of the caller's task ``parent_id`` (None: inbox, or no such task)."""
        row = await self.fetch_row(_PARENT_LIST, {"owner": user_id, "parent_id": parent_id})
        return None if row is None else cast("UUID | None", row[0])

    async def group_exists(self, user_id: str, field: str, group_id: UUID) -> bool:
        """Whether ``group_id`` names a list (``list_id``) or a would-be parent (``parent_id``) of theirs."""
        return await self.fetch_row(_GROUP_EXISTS[field], {"owner": user_id, field: group_id}) is not None

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

    async def stats(self, user_id: str, now: datetime, in_list: UUID | str | None = None) -> TaskStats:
        params = {"owner": user_id, "now": now, "list_id": _id(in_list)}
        total, completed, overdue = cast(
            "tuple[int, int, int]", await self.fetch_row(_STATS[_kind(in_list)], params)
        )
        return TaskStats(total=total, completed=completed, active=total - completed, overdue=overdue)

    async def set_completed_all(
        self, user_id: str, completed: bool, now: datetime, in_list: UUID | str | None = None
    ) -> int:
        params = {"owner": user_id, "completed": completed, "now": now, "list_id": _id(in_list)}
        await self.lock_owner(user_id)
        return await self.write(_SET_COMPLETED_ALL[_kind(in_list)], params)

    async def delete_completed(self, user_id: str, in_list: UUID | str | None = None) -> int:
        params = {"owner": user_id, "list_id": _id(in_list)}
        await self.lock_owner(user_id)
        return await self.write(_DELETE_COMPLETED[_kind(in_list)], params)


def _kind(in_list: UUID | str | None) -> str | None:
    """The statement variant of a list filter: none, "inbox", or "id"."""
    return "id" if isinstance(in_list, UUID) else in_list


def _id(in_list: UUID | str | None) -> UUID | None:
    return in_list if isinstance(in_list, UUID) else None
