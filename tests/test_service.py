"""The service layer on its own: Advanced Alchemy's inherited methods and ours share one session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from backend.data.service import UnscopedWrite
from backend.db import database_config
from backend.settings import load_settings
from backend.tasks import TaskService
from backend.tasks.filters import TaskFilter
from backend.tasks.models import Task
from backend.tasks.repository import TaskRepository
from backend.tasks.schemas import TaskWrite
from tests.support import SECRET


def test_inherited_and_own_methods_work_on_one_session(database_url: str) -> None:
    user, other = f"svc-{uuid.uuid4().hex[:8]}", f"svc-{uuid.uuid4().hex[:8]}"
    config = database_config(load_settings({"DATABASE_URL": database_url, "JWT_SECRET": SECRET}))

    async def run() -> None:
        async with config.get_session() as session, TaskService.new(session=session) as service:
            assert isinstance(service.repository, TaskRepository)
            # Ours: prebuilt statements on the session's own connection.
            first = await service.add_task(user, TaskWrite(title="  first  ", tags=["Home"]))
            await service.add_task(user, TaskWrite(title="second", completed=True))
            await service.add_task(other, TaskWrite(title="someone else's"))
            assert (first.title, first.tags, first.version) == ("first", ["home"], 1)
            # AA's: the ORM path, same session, same rows.
            assert await service.count(Task.user_id == user) == 2
            found = await service.get_one_or_none(id=first.id, user_id=user)
            assert found is not None
            assert found.title == "first"
            assert await service.get_one_or_none(id=first.id, user_id=other) is None
            listed = await service.get_many(Task.user_id == user, Task.completed.is_(True))
            assert [t.title for t in listed] == ["second"]
            # And back to ours after the ORM ran in the same session (and its transaction).
            page, total = await service.list_tasks(user, TaskFilter(sort="title"))
            assert ([t.title for t in page], total) == (["first", "second"], 2)
            stats = await service.stats(user)
            assert (stats.total, stats.completed, stats.active) == (2, 1, 1)

    try:
        asyncio.run(run())
    finally:
        asyncio.run(config.get_engine().dispose())


def test_advanced_alchemys_inherited_writes_are_unreachable_on_tasks(database_url: str) -> None:
    """They would skip the owner check, the version bump, completed_at and the quota: they raise, and
    nothing changes."""
    user = f"svc-{uuid.uuid4().hex[:8]}"
    config = database_config(load_settings({"DATABASE_URL": database_url, "JWT_SECRET": SECRET}))

    async def run() -> None:
        async with config.get_session() as session, TaskService.new(session=session) as service:
            task = await service.add_task(user, TaskWrite(title="mine"))
            model = Task(id=uuid.uuid4(), user_id=user, title="sneaked in")
            attempts: dict[str, Callable[[], Any]] = {
                "create": lambda: service.create(model),
                "create_many": lambda: service.create_many([model]),
                "update": lambda: service.update({"title": "changed"}, item_id=task.id),
                "update_many": lambda: service.update_many([model]),
                "upsert": lambda: service.upsert(model),
                "upsert_many": lambda: service.upsert_many([model]),
                "get_or_upsert": lambda: service.get_or_upsert(title="x", user_id=user),
                "get_and_update": lambda: service.get_and_update(id=task.id, title="changed"),
                "delete": lambda: service.delete(task.id),
                "delete_many": lambda: service.delete_many([task.id]),
                "delete_where": lambda: service.delete_where(Task.user_id == user),
            }
            for attempt in attempts.values():
                with pytest.raises(UnscopedWrite, match="writes through its own methods"):
                    await attempt()  # a TypeError: no coroutine was even created
            await session.commit()
            page, total = await service.list_tasks(user, TaskFilter())
            assert total == 1
            assert (page[0].title, page[0].version) == ("mine", 1)

    try:
        asyncio.run(run())
    finally:
        asyncio.run(config.get_engine().dispose())
