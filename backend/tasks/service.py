"""Every query on tasks. Each method takes the caller's ``user_id`` and each statement filters on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from advanced_alchemy.exceptions import NotFoundError
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from backend.errors import VersionMismatch
from backend.tasks.models import Priority, Task
from backend.tasks.schemas import TaskCreate, TaskRead, TaskStats

_t = cast("Table", Task.__table__)
# The SELECT/RETURNING list, in TaskRead's field order, so a row becomes a TaskRead positionally.
_COLUMNS = tuple(_t.c[name] for name in TaskRead.__struct_fields__)
_OWNED = and_(_t.c.id == bindparam("task_id"), _t.c.user_id == bindparam("owner"))
_NOW = bindparam("now", type_=_t.c.updated_at.type)

_GET = select(*_COLUMNS).where(_OWNED)
_EXISTS = select(literal(1)).where(_OWNED)
_INSERT = insert(_t).returning(*_COLUMNS)
_DELETE = delete(_t).where(_OWNED).returning(_t.c.id)
_BUMP = {"version": _t.c.version + 1, "updated_at": _NOW}
_TOGGLE = (
    update(_t)
    .where(_OWNED)
    .values(
        completed=~_t.c.completed,
        completed_at=case((_t.c.completed, None), else_=_NOW),
        **_BUMP,
    )
)
_STATS = select(
    func.count(),
    func.count().filter(_t.c.completed),
    func.count().filter(~_t.c.completed, _t.c.due_at < _NOW),
).where(_t.c.user_id == bindparam("owner"))
_DELETE_COMPLETED = delete(_t).where(_t.c.user_id == bindparam("owner"), _t.c.completed)

SORTABLE = ("created_at", "updated_at", "due_at", "priority", "title")


def _completed_at(completed: Any) -> ColumnElement[Any]:
    """``completed_at`` when ``completed`` is set: kept if it already was completed, now if it becomes so."""
    return case((completed, case((_t.c.completed, _t.c.completed_at), else_=_NOW)), else_=None)


_SET_COMPLETED_ALL = (
    update(_t)
    .where(_t.c.user_id == bindparam("owner"), _t.c.completed != bindparam("completed"))
    .values(completed=bindparam("completed"), completed_at=_completed_at(bindparam("completed")), **_BUMP)
)


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


class TaskRepository(SQLAlchemyAsyncRepository[Task]):
    model_type = Task


class TaskService(SQLAlchemyAsyncRepositoryService[Task, TaskRepository]):
    """Tasks of one user at a time: single statements, rows straight into response Structs."""

    repository_type = TaskRepository

    @property
    def session(self) -> AsyncSession:
        return self.repository.session  # type: ignore[return-value]

    async def _row(self, statement: Any, params: dict[str, Any]) -> Any:
        return (await self.session.execute(statement, params)).first()

    async def get_task(self, user_id: str, task_id: str) -> TaskRead:
        row = await self._row(_GET, {"task_id": _parse_id(task_id), "owner": user_id})
        if row is None:
            raise NotFoundError("Task not found")
        return TaskRead(*row)

    async def add_task(self, user_id: str, data: TaskCreate) -> TaskRead:
        now = datetime.now(UTC)
        values = {
            "user_id": user_id,
            "title": data.title,
            "description": data.description,
            "completed": data.completed,
            "completed_at": now if data.completed else None,
            "priority": data.priority,
            "tags": data.tags,
            "due_at": data.due_at,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        row = await self._row(_INSERT, values)
        await self.session.commit()
        return TaskRead(*row)

    async def update_task(
        self, user_id: str, task_id: str, changes: dict[str, Any], if_match: Sequence[int] | None = None
    ) -> TaskRead:
        """Apply ``changes``; an empty change set returns the task as it is (still checking ``If-Match``)."""
        values: dict[str, Any] = dict(changes)
        if "completed" in values:
            values["completed_at"] = _completed_at(literal(values["completed"]))
        statement = update(_t).where(_OWNED).values(**values, **_BUMP) if values else None
        return await self._write(statement, user_id, task_id, if_match)

    async def set_completed(
        self, user_id: str, task_id: str, completed: bool | None, if_match: Sequence[int] | None = None
    ) -> TaskRead:
        """Set ``completed``, or toggle it atomically when ``completed`` is None."""
        if completed is None:
            return await self._write(_TOGGLE, user_id, task_id, if_match)
        return await self.update_task(user_id, task_id, {"completed": completed}, if_match)

    async def delete_task(self, user_id: str, task_id: str, if_match: Sequence[int] | None = None) -> None:
        params = {"task_id": _parse_id(task_id), "owner": user_id}
        statement = _DELETE if if_match is None else _DELETE.where(_t.c.version.in_(if_match))
        row = await self._row(statement, params)
        if row is None:
            await self._raise_missing_or_stale(params, if_match)
        await self.session.commit()

    async def _write(
        self, statement: Any, user_id: str, task_id: str, if_match: Sequence[int] | None
    ) -> TaskRead:
        params = {"task_id": _parse_id(task_id), "owner": user_id, "now": datetime.now(UTC)}
        statement = _GET if statement is None else statement.returning(*_COLUMNS)
        # The version check rides in the same statement as the write: no window between them.
        if if_match is not None:
            statement = statement.where(_t.c.version.in_(if_match))
        row = await self._row(statement, params)
        if row is None:
            await self._raise_missing_or_stale(params, if_match)
        await self.session.commit()
        return TaskRead(*row)

    async def _raise_missing_or_stale(self, params: dict[str, Any], if_match: Sequence[int] | None) -> None:
        if if_match is not None and await self._row(_EXISTS, params) is not None:
            raise VersionMismatch
        raise NotFoundError("Task not found")

    async def list_tasks(self, user_id: str, f: TaskFilter) -> tuple[list[TaskRead], int]:
        """One page of the caller's tasks and the number matching the whole filter."""
        where = _filters(user_id, f)
        page = select(*_COLUMNS).where(*where).order_by(*_order(f.sort)).limit(f.limit).offset(f.offset)
        rows = (await self.session.execute(page, {"now": datetime.now(UTC)})).all()
        if f.offset == 0 and len(rows) < f.limit:
            total = len(rows)
        else:
            total = (
                await self.session.execute(select(func.count()).select_from(_t).where(*where))
            ).scalar_one()
        return [TaskRead(*r) for r in rows], total

    async def stats(self, user_id: str) -> TaskStats:
        total, completed, overdue = await self._row(_STATS, {"owner": user_id, "now": datetime.now(UTC)})
        return TaskStats(total=total, completed=completed, active=total - completed, overdue=overdue)

    async def complete_all(self, user_id: str, completed: bool) -> int:
        result = await self.session.execute(
            _SET_COMPLETED_ALL, {"owner": user_id, "completed": completed, "now": datetime.now(UTC)}
        )
        await self.session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def delete_completed(self, user_id: str) -> int:
        result = await self.session.execute(_DELETE_COMPLETED, {"owner": user_id})
        await self.session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


def _parse_id(task_id: str) -> UUID:
    # A string that is not a UUID names no task: the same 404 as a missing one.
    try:
        return UUID(task_id)
    except ValueError:
        raise NotFoundError("Task not found") from None


def _filters(user_id: str, f: TaskFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [_t.c.user_id == user_id]
    if f.completed is not None:
        where.append(_t.c.completed.is_(f.completed))
    if f.priority is not None:
        where.append(_t.c.priority == f.priority)
    if f.tag is not None:
        where.append(_t.c.tags.contains([f.tag]))
    if f.q:
        # autoescape: % and _ in the search text are literal characters, not wildcards.
        where.append(
            or_(_t.c.title.icontains(f.q, autoescape=True), _t.c.description.icontains(f.q, autoescape=True))
        )
    if f.due_after is not None:
        where.append(_t.c.due_at >= f.due_after)
    if f.due_before is not None:
        where.append(_t.c.due_at < f.due_before)
    return where


def _order(sort: str) -> list[Any]:
    descending = sort.startswith("-")
    column = _t.c[sort.removeprefix("-")]
    key = column.desc() if descending else column.asc()
    # Tasks without a due date go last either way; id breaks ties so pages never overlap.
    if column is _t.c.due_at:
        key = key.nulls_last()
    return [key, _t.c.id.desc() if descending else _t.c.id.asc()]


__all__ = ["SORTABLE", "TaskFilter", "TaskService", "false"]
