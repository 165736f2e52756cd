"""Lists through Advanced Alchemy's repository, plus the one prebuilt statement a move needs."""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

import asyncpg
from sqlalchemy import Table

from backend.data.ordering import move_statement
from backend.lists.models import TaskList
from backend.lists.schemas import ListRead
from backend.sql import DriverRepository

_t = cast("Table", TaskList.__table__)
_MOVE = move_statement(_t, [_t.c[name] for name in ListRead.__struct_fields__])


class ListRepository(DriverRepository[TaskList]):
    model_type = TaskList

    async def move(
        self, user_id: str, list_id: UUID, after: UUID | None, now: datetime, if_match: tuple[int, ...] | None
    ) -> ListRead:
        """Place the caller's list right after ``after`` (None: first), in one round trip."""
        params = {"owner": user_id, "target": list_id, "after": after, "now": now}
        row = await self.fetch_row(
            _MOVE, {**params, "versions": None if if_match is None else list(if_match)}
        )
        return ListRead(*cast("asyncpg.Record", row))
