"""The rules of tasks: ids, versions, completion times, If-Match, the per-user quota.

``TaskService`` is Advanced Alchemy's service around a ``TaskRepository``, built per request by AA's
Litestar provider on the request's session. Every inherited method (``count``, ``get_one_or_none``,
``list``...) works as usual; the methods below are the API's paths.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote
from uuid import UUID

import msgspec
from advanced_alchemy.exceptions import NotFoundError
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_409_CONFLICT
from uuid_utils.compat import uuid7

from backend.errors import VersionMismatch
from backend.http.etags import etag
from backend.idempotency import Once, StoredResponse
from backend.tasks.filters import TaskFilter
from backend.tasks.models import Priority, Task
from backend.tasks.repository import TaskRepository
from backend.tasks.schemas import TaskRead, TaskStats, TaskWrite

DEFAULT_MAX_TASKS = 100_000
MAX_TASKS_INFO_KEY = "tasks_max_per_user"


class TaskService(SQLAlchemyAsyncRepositoryService[Task, TaskRepository]):
    """Tasks of one user at a time."""

    repository_type = TaskRepository

    @property
    def max_tasks(self) -> int:
        # Per app, through the session's ``info`` (``backend.db``): AA's provider builds the service
        # from the session alone.
        return int(self.repository.session.info.get(MAX_TASKS_INFO_KEY, DEFAULT_MAX_TASKS))

    async def get_task(self, user_id: str, task_id: str) -> TaskRead:
        return await self.repository.fetch_task(user_id, _parse_id(task_id)) or _not_found()

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
        }
        task: TaskRead | None
        if once is None:
            task = await self.repository.insert_task(values, self.max_tasks)
        else:
            # The answer is stored with the insert, so it is built first: every value is known here
            # (due_at as the database returns it, in UTC), and the first answer is that same one.
            due_at = data.due_at and data.due_at.astimezone(UTC)
            task = TaskRead(**{**values, "priority": data.priority, "due_at": due_at})
            response = StoredResponse(
                201, msgspec.json.encode(task).decode(), task_location(user_id, task.id), etag(1)
            )
            if not await self.repository.insert_task_once(values, self.max_tasks, once, response):
                task = None
        if task is None:
            raise ClientException(
                status_code=HTTP_409_CONFLICT,
                detail=f"Task limit reached: a user holds at most {self.max_tasks} tasks",
                extra=[{"field": "tasks", "message": f"at most {self.max_tasks} per user"}],
            )
        return task

    async def update_task(
        self, user_id: str, task_id: str, changes: dict[str, Any], if_match: tuple[int, ...] | None = None
    ) -> TaskRead:
        """Apply ``changes``; an empty change set returns the task as it is (still checking ``If-Match``)."""
        task_uuid = _parse_id(task_id)
        if not changes:
            current = await self.repository.fetch_task(user_id, task_uuid) or _not_found()
            if if_match is not None and current.version not in if_match:
                raise VersionMismatch
            return current
        values = {k: v.value if isinstance(v, Priority) else v for k, v in changes.items()}
        task = await self.repository.update_task(user_id, task_uuid, values, datetime.now(UTC), if_match)
        return task or await self._missing_or_stale(user_id, task_uuid, if_match)

    async def set_completed(
        self, user_id: str, task_id: str, completed: bool | None, if_match: tuple[int, ...] | None = None
    ) -> TaskRead:
        """Set ``completed``, or toggle it atomically when ``completed`` is None."""
        if completed is not None:
            return await self.update_task(user_id, task_id, {"completed": completed}, if_match)
        task_uuid = _parse_id(task_id)
        task = await self.repository.toggle_task(user_id, task_uuid, datetime.now(UTC), if_match)
        return task or await self._missing_or_stale(user_id, task_uuid, if_match)

    async def delete_task(self, user_id: str, task_id: str, if_match: tuple[int, ...] | None = None) -> None:
        task_uuid = _parse_id(task_id)
        if await self.repository.delete_task(user_id, task_uuid, if_match) is None:
            await self._missing_or_stale(user_id, task_uuid, if_match)

    async def list_tasks(self, user_id: str, f: TaskFilter) -> tuple[list[TaskRead], int]:
        """One page of the caller's tasks and the number matching the whole filter."""
        return await self.repository.page(user_id, f)

    async def stats(self, user_id: str) -> TaskStats:
        return await self.repository.stats(user_id, datetime.now(UTC))

    async def complete_all(self, user_id: str, completed: bool, once: Once | None = None) -> int:
        if once is None:
            return await self.repository.set_completed_all(user_id, completed, datetime.now(UTC))
        return await self.repository.set_completed_all_once(user_id, completed, datetime.now(UTC), once)

    async def clear_completed(self, user_id: str) -> int:
        return await self.repository.delete_completed(user_id)

    async def _missing_or_stale(
        self, user_id: str, task_id: UUID, if_match: tuple[int, ...] | None
    ) -> NoReturn:
        """A guarded write changed nothing: say whether the task is missing or only stale."""
        if if_match is not None and await self.repository.task_exists(user_id, task_id):
            raise VersionMismatch
        _not_found()


def task_location(user_id: str, task_id: UUID) -> str:
    """The task's URL path (its ``Location``)."""
    return f"/api/{quote(user_id, safe='')}/tasks/{task_id}"


def _not_found() -> NoReturn:
    raise NotFoundError("Task not found")


def _parse_id(task_id: str) -> UUID:
    # A string that is not a UUID names no task: the same 404 as a missing one.
    try:
        return UUID(task_id)
    except ValueError:
        _not_found()
