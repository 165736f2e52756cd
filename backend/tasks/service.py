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

import msgspec
from uuid_utils.compat import uuid7

from backend.data.service import DriverService
from backend.errors import VersionMismatch
from backend.http.etags import etag
from backend.http.headers import location
from backend.idempotency import Once, StoredResponse
from backend.tasks.filters import TaskFilter
from backend.tasks.models import Priority, Task
from backend.tasks.repository import TaskRepository
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
        }
        task: TaskRead | None
        if once is None:
            task = await self.repository.insert_owned(values, self.quota)
        else:
            # The answer is stored with the insert, so it is built first: every value is known here
            # (due_at is in UTC already, as the database returns it), and the first answer is that same one.
            task = TaskRead(**{**values, "priority": data.priority})
            response = StoredResponse(
                201, msgspec.json.encode(task).decode(), task_location(user_id, task.id), etag(1)
            )
            if not await self.repository.insert_owned_once(values, self.quota, once, response):
                task = None
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
        task = await self.repository.update_owned(user_id, task_uuid, values, datetime.now(UTC), if_match)
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

    async def list_tasks(self, user_id: str, query: TaskFilter) -> tuple[list[TaskRead], int]:
        """One page of the caller's tasks and the number matching the whole filter."""
        return await self.repository.page(user_id, query)

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
    ) -> TaskRead:
        return await self.missing_or_stale(lambda: self.repository.owned_exists(user_id, task_id), if_match)


def task_location(user_id: str, task_id: UUID) -> str:
    """The task's URL path (its ``Location``)."""
    return location("api", user_id, "tasks", task_id)
