"""Every statement of ``/sync``; each takes the caller's ``user_id`` and filters on it."""

from __future__ import annotations

from datetime import datetime
from itertools import accumulate, pairwise
from typing import Any
from uuid import UUID

import asyncpg
from msgspec import Struct

from backend.data import changes
from backend.lists.schemas import ListRead
from backend.sql import DriverRepository
from backend.tasks.models import Task
from backend.tasks.schemas import TaskRead


class Tracked:
    """A table whose changes ``/sync`` sends, and the Struct a row of it becomes (columns in field order)."""

    def __init__(self, table: str, read_type: type[Struct]) -> None:
        self.table = table
        self.read_type = read_type
        self.columns: tuple[str, ...] = read_type.__struct_fields__
        self.page = changes.snapshot_page(table, self.columns)


# In this order in a full sync and within one change number: lists before the tasks that name them.
TRACKED = (Tracked("lists", ListRead), Tracked("tasks", TaskRead))
CHANGES_SQL = changes.changes_page(tuple((t.table, t.columns) for t in TRACKED))
# Where each table's columns are in a row of CHANGES_SQL: after the clock (2) and the change (4).
ROW_SLICES = tuple(
    slice(start, end) for start, end in pairwise(accumulate((len(t.columns) for t in TRACKED), initial=6))
)

# ``(kind, id, number, version, row)``: ``row`` is the changed row as it is now, or None for a tombstone
# (``version`` is then the one it had) and for a row deleted since.
Change = tuple[int, UUID, int, int | None, Struct | None]


class SyncRepository(DriverRepository[Task]):
    """Reads only. AA's repository wants a model; the statements here name their tables themselves."""

    model_type = Task

    async def clock(self, user_id: str) -> tuple[int, int]:
        """The caller's change counter and the number its history was purged through."""
        row = await self.fetch_row(changes.CLOCK, {"owner": user_id})
        assert row is not None  # an aggregate always answers one row
        return int(row[0]), int(row[1])

    async def snapshot_rows(
        self, user_id: str, table: int, created_at: datetime | None, after: UUID, n: int
    ) -> list[asyncpg.Record]:
        params: dict[str, Any] = {
            "owner": user_id, "created_at": created_at, "after": after, "n": n,
        }  # fmt: skip
        return await self.fetch_rows(TRACKED[table].page, params)

    async def changed(
        self, user_id: str, since: changes.Since, n: int
    ) -> tuple[tuple[int, int], list[Change]]:
        """The caller's clock (as ``clock``), and up to ``n`` changes after ``since``: one statement."""
        params = {"owner": user_id, "seq": since.seq, "kind": since.kind, "after": since.after, "n": n}
        rows = await self.fetch_rows(CHANGES_SQL, params)
        clock = (int(rows[0][0]), int(rows[0][1]))  # the LEFT JOIN always answers a row
        return clock, [_change(r) for r in rows if r[2] is not None]


def _change(row: asyncpg.Record) -> Change:
    kind = row[2]
    table = TRACKED[kind // 2]
    columns = row[ROW_SLICES[kind // 2]]
    found = None if kind % 2 or columns[0] is None else table.read_type(*columns)
    return kind, row[3], row[4], row[5], found
