"""The rules of tasks: ids, versions, completion times, If-Match, the per-user quota.

``TaskService`` is Advanced Alchemy's service around a ``TaskRepository``, built per request by AA's
Litestar provider on the request's session. AA's inherited reads (``count``, ``get_one_or_none``,
``list``...) work as usual; its inherited writes are unreachable (``DriverService``): the methods below
are the only way to change a task.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from litestar.exceptions import ValidationException
from uuid_utils.compat import uuid7

from backend.data.service import DriverService
from backend.data.statements import PENDING
from backend.errors import VersionMismatch
from backend.http.dto import FieldErrors
from backend.http.etags import etag
from backend.http.headers import location
from backend.idempotency import Once, StoredResponse
from backend.tasks.filters import INBOX, TaskFilter, group_filter
from backend.tasks.models import Priority, Task
from backend.tasks.repository import TASKS, TaskRepository
from backend.tasks.schemas import TaskRead, TaskStats, TaskWrite


class TaskService(DriverService[Task, TaskRepository]):
    """Tasks of one user at a time."""

    repository_type = TaskRepository
    noun = "Task"
    quota = 100_000

    async def get_task(self, user_id: str, task_id: str) -> TaskRead:
        return await self.repository.fetch_owned(user_id, self.parse_id(task_id)) or self.not_found()

    async def add_task(self, user_id: str, data: TaskWrite, once: Once | None = None) -> TaskRead:
        """The new task. With ``once``, at most one task per key: a retry gets the first answer."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {
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
            "list_id": data.list_id,
            "parent_id": data.parent_id,
            "position": None,  # the database places it last among its siblings
        }
        try:
            if once is None:
                task = await self.repository.insert_owned(values, self.quota)
            else:
                task = await self.repository.insert_owned_once(values, self.quota, once, _answer(values))
        except asyncpg.PostgresError as exc:
            self.refused(exc)
        return task or self.quota_reached("tasks")

    async def update_task(
        self, user_id: str, task_id: str, changes: dict[str, Any], if_match: tuple[int, ...] | None = None
    ) -> TaskRead:
        """Apply ``changes``; an empty change set returns the task as it is (still checking ``If-Match``)."""
        task_uuid = self.parse_id(task_id)
        if not changes:
            current = await self.repository.fetch_owned(user_id, task_uuid) or self.not_found()
            if if_match is not None and current.version not in if_match:
                raise VersionMismatch(self.noun)
            return current
        values = {k: v.value if isinstance(v, Priority) else v for k, v in changes.items()}
        try:
            task = await self.repository.update_owned(user_id, task_uuid, values, datetime.now(UTC), if_match)
        except asyncpg.PostgresError as exc:
            self.refused(exc)
        return task or await self._missing_or_stale(user_id, task_uuid, if_match)

    async def set_completed(
        self, user_id: str, task_id: str, completed: bool | None, if_match: tuple[int, ...] | None = None
    ) -> TaskRead:
        """Set ``completed``, or toggle it atomically when ``completed`` is None."""
        if completed is not None:
            return await self.update_task(user_id, task_id, {"completed": completed}, if_match)
        task_uuid = self.parse_id(task_id)
        task = await self.repository.toggle_task(user_id, task_uuid, datetime.now(UTC), if_match)
        return task or await self._missing_or_stale(user_id, task_uuid, if_match)

    async def delete_task(self, user_id: str, task_id: str, if_match: tuple[int, ...] | None = None) -> None:
        task_uuid = self.parse_id(task_id)
        if await self.repository.delete_owned(user_id, task_uuid, if_match) is None:
            await self._missing_or_stale(user_id, task_uuid, if_match)

    async def move_task(
        self, user_id: str, task_id: str, where: dict[str, Any], if_match: tuple[int, ...] | None = None
    ) -> TaskRead:
        """Place the task after a sibling, in its group or another (``TaskMove``'s fields as given)."""
        try:
            return await self.repository.move_task(
                user_id, self.parse_id(task_id), where, datetime.now(UTC), if_match
            )
        except asyncpg.PostgresError as exc:
            self.refused(exc)

    async def list_tasks(self, user_id: str, query: TaskFilter) -> tuple[list[TaskRead], int]:
        """One page of the caller's tasks and the number matching the whole filter."""
        items, total = await self.repository.page(user_id, query)
        if total == 0:
            # Nothing matched: say so if a group filter names nothing of the caller's (when something
            # matched, it named a list or task of theirs: no extra round trip).
            await self._check_groups(user_id, list_id=query.list_id, parent_id=query.parent_id)
        return items, total

    async def _check_groups(self, user_id: str, **groups: object) -> None:
        errors = FieldErrors()
        for field, value in groups.items():
            if isinstance(value, UUID) and not await self.repository.group_exists(user_id, field, value):
                errors.add(
                    field,
                    "names no list of yours"
                    if field == "list_id"
                    else "names no task of yours that can have subtasks",
                )
        if errors.errors:
            raise ValidationException(detail="Invalid query parameters", extra=errors.errors)

    async def stats(self, user_id: str, list_id: str | None = None) -> TaskStats:
        in_list = await self._list_filter(user_id, list_id)
        return await self.repository.stats(user_id, datetime.now(UTC), in_list)

    async def complete_all(
        self, user_id: str, completed: bool, once: Once | None = None, list_id: str | None = None
    ) -> int:
        """Set ``completed`` on every task of the caller, or of one list (``list_id``: an id or inbox)."""
        in_list = await self._list_filter(user_id, list_id)
        now = datetime.now(UTC)
        if once is None:
            return await self.repository.set_completed_all(user_id, completed, now, in_list)
        return await self.repository.set_completed_all_once(user_id, completed, now, once, in_list)

    async def clear_completed(self, user_id: str, list_id: str | None = None) -> int:
        in_list = await self._list_filter(user_id, list_id)
        return await self.repository.delete_completed(user_id, in_list)

    async def _list_filter(self, user_id: str, list_id: str | None) -> UUID | str | None:
        """``list_id`` as a bulk action or the stats take it: an id of a list of the caller's, or inbox."""
        errors = FieldErrors()
        in_list = group_filter(errors, "list_id", list_id, INBOX)
        if errors.errors:
            raise ValidationException(detail="Invalid list_id", extra=errors.errors)
        await self._check_groups(user_id, list_id=in_list)
        return in_list

    async def _missing_or_stale(
        self, user_id: str, task_id: UUID, if_match: tuple[int, ...] | None
    ) -> TaskRead:
        return await self.missing_or_stale(lambda: self.repository.owned_exists(user_id, task_id), if_match)


def _answer(values: dict[str, Any]) -> StoredResponse:
    """The 201 a keyed create stores with its insert: built here from the values (due_at is in UTC, as
    the database returns it), but for what the database decides (``TASKS.decided_on_insert``)."""
    body = msgspec.to_builtins(
        TaskRead(**{**values, "priority": Priority(values["priority"]), "position": ""})
    )
    body.update({name: PENDING for name in TASKS.decided_on_insert})
    location = task_location(values["user_id"], values["id"])
    return StoredResponse(201, msgspec.json.encode(body).decode(), location, etag(1))


def task_location(user_id: str, task_id: UUID) -> str:
    """The task's URL path (its ``Location``)."""
    return location("api", user_id, "tasks", task_id)
