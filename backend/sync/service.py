"""The rules of ``/sync``: a full snapshot in pages, then every change after a cursor."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from backend.data.changes import KEEP_DAYS, BadCursor, Since, Snapshot, decode, encode
from backend.sync.repository import TRACKED, Change, SyncRepository
from backend.sync.schemas import Deleted, SyncPage


class CursorGone(HTTPException):
    """410: the cursor does not parse, or the changes after it are no longer all remembered."""

    status_code = 410


GONE = (
    f"This sync cursor is unknown or older than the {KEEP_DAYS} days of changes the server keeps: "
    "sync again without a cursor"
)


class SyncService:
    """Pages of one user's lists and tasks: everything, or what changed after a cursor."""

    def __init__(self, repository: SyncRepository) -> None:
        self.repository = repository

    async def page(self, user_id: str, cursor: str | None, limit: int) -> SyncPage:
        try:
            at = None if cursor is None else decode(cursor)
        except BadCursor:
            raise CursorGone(detail=GONE) from None
        if isinstance(at, Since):
            # The clock comes with the changes (one statement); a cursor it refuses sends none of them.
            clock, changed = await self.repository.changed(user_id, at, limit + 1)
            _check(at.seq, *clock)
            return self._since(at, changed, limit)
        seq, purged = await self.repository.clock(user_id)
        at = Snapshot(seq) if at is None else at
        _check(at.base, seq, purged)
        return await self._snapshot(user_id, at, limit)

    async def _snapshot(self, user_id: str, at: Snapshot, limit: int) -> SyncPage:
        """Tables in turn, each in (created_at, id) order, ``limit`` objects in all."""
        found: list[list[Any]] = [[] for _ in TRACKED]
        table, created_at, after, room = at.table, at.created_at, at.after, limit
        while table < len(TRACKED):
            rows = await self.repository.snapshot_rows(user_id, table, created_at, after, room + 1)
            items = [TRACKED[table].read_type(*row) for row in rows[:room]]
            found[table].extend(items)
            room -= len(items)
            if len(rows) > len(items):
                last = rows[len(items) - 1]
                return _answer(found, [], Snapshot(at.base, table, last["created_at"], last["id"]), more=True)
            table, created_at, after = table + 1, None, UUID(int=0)
            if room == 0 and table < len(TRACKED):
                return _answer(found, [], Snapshot(at.base, table), more=True)
        # Everything committed after ``base`` comes next, also what changed while these pages were read.
        return _answer(found, [], Since(at.base), more=False)

    def _since(self, at: Since, changed: list[Change], limit: int) -> SyncPage:
        page = changed[:limit]
        found: list[list[Any]] = [[] for _ in TRACKED]
        deleted: list[list[Deleted]] = [[] for _ in TRACKED]
        for kind, item_id, _, version, row in page:
            if kind % 2:
                assert version is not None  # a tombstone always has the version it had
                deleted[kind // 2].append(Deleted(item_id, version))
            elif row is not None:  # None: deleted since; its tombstone comes later
                # Read in the same statement: one changed again since is sent as it is now (and again
                # later, under its new number).
                found[kind // 2].append(row)
        cursor = Since(page[-1][2], page[-1][0], page[-1][1]) if page else at
        return _answer(found, deleted, cursor, more=len(changed) > limit)


def _check(number: int, seq: int, purged: int) -> None:
    """410 below the purge (deletions after it may be forgotten) and above the counter (not this
    user's cursor)."""
    if not purged <= number <= seq:
        raise CursorGone(detail=GONE)


def _answer(
    found: list[list[Any]], deleted: list[list[Deleted]], cursor: Snapshot | Since, *, more: bool
) -> SyncPage:
    gone = deleted or [[] for _ in TRACKED]
    return SyncPage(
        lists=found[0], tasks=found[1], deleted_lists=gone[0], deleted_tasks=gone[1],
        cursor=encode(cursor), more=more,
    )  # fmt: skip


async def provide_sync(db_session: NamedDependency[AsyncSession]) -> SyncService:
    """A SyncService on the session AA's plugin opens for the request."""
    return SyncService(SyncRepository(session=db_session))
