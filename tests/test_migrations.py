"""The schema comes from real Alembic migrations, driven by `litestar database ...`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from tests.conftest import new_database
from tests.support import SECRET, run_cli


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        types = await conn.fetch("SELECT typname FROM pg_type WHERE typname = 'task_priority'")
        return {r["tablename"] for r in rows} | {f"type:{r['typname']}" for r in types}
    finally:
        await conn.close()


def test_upgrade_downgrade_round_trip_and_no_drift(admin_url: str) -> None:
    url = new_database(admin_url)
    env = {"DATABASE_URL": url, "JWT_SECRET": SECRET}
    run_cli("database", "upgrade", "--no-prompt", env=env)
    assert {"tasks", "alembic_version", "type:task_priority"} <= asyncio.run(_tables(url))
    check = run_cli("database", "check", env=env)
    assert "No new upgrade operations detected" in check.stdout + check.stderr

    run_cli("database", "downgrade", "base", "--no-prompt", env=env)
    assert asyncio.run(_tables(url)) == {"alembic_version"}

    run_cli("database", "upgrade", "--no-prompt", env=env)
    assert "tasks" in asyncio.run(_tables(url))
    current = run_cli("database", "show-current-revision", env=env)
    assert "(head)" in current.stdout + current.stderr


async def _seed_before_lists(url: str) -> list[tuple[str, str]]:
    """Tasks written before lists existed: two users, created out of id order, two at the same instant."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = [
            ("00000000-0000-7000-8000-000000000003", "ann", "2026-01-01T10:00:00Z"),
            ("00000000-0000-7000-8000-000000000001", "ann", "2026-01-01T11:00:00Z"),
            ("00000000-0000-7000-8000-000000000002", "ann", "2026-01-01T11:00:00Z"),
            ("00000000-0000-7000-8000-000000000004", "bob", "2026-01-01T09:00:00Z"),
        ]
        await conn.executemany(
            "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
            "VALUES ($1::uuid, $2, $1, $3::text::timestamptz, $3::text::timestamptz)",
            rows,
        )
        return [(r[0], r[1]) for r in rows]
    finally:
        await conn.close()


async def _after_lists(url: str) -> tuple[list[tuple[str, str, str, object, object]], int]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT id::text, user_id, position, list_id, parent_id FROM tasks ORDER BY user_id, position"
        )
        events = await conn.fetchval("SELECT count(*) FROM task_events WHERE type <> 'task.created'")
        return [tuple(r) for r in rows], int(events)
    finally:
        await conn.close()


def upgraded_across(admin_url: str, revision: str, seed: Callable[[str], Coroutine[Any, Any, object]]) -> str:
    """A new database migrated to ``revision``, given rows by ``seed``, then to the head: its URL."""
    url = new_database(admin_url)
    env = {"DATABASE_URL": url, "JWT_SECRET": SECRET}
    run_cli("database", "upgrade", revision, "--no-prompt", env=env)
    asyncio.run(seed(url))
    run_cli("database", "upgrade", "--no-prompt", env=env)
    return url


def test_tasks_from_before_lists_get_positions_in_their_inbox_by_creation(admin_url: str) -> None:
    url = upgraded_across(admin_url, "0006", _seed_before_lists)
    rows, events = asyncio.run(_after_lists(url))
    assert rows == [
        ("00000000-0000-7000-8000-000000000003", "ann", "a0", None, None),
        ("00000000-0000-7000-8000-000000000001", "ann", "a1", None, None),
        ("00000000-0000-7000-8000-000000000002", "ann", "a2", None, None),
        ("00000000-0000-7000-8000-000000000004", "bob", "a0", None, None),
    ]
    assert events == 0  # the backfill is no change anybody is told about


_IDS = [f"00000000-0000-7000-8000-00000000001{i}" for i in range(3)]


async def _fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def _seed_changes(url: str) -> None:
    """Under 0016's tracking: three creates, one title change of the first, one delete."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for task_id in _IDS:
            await conn.execute(
                "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                "VALUES ($1::uuid, 'ann', $1::text, now(), now())",
                task_id,
            )
        await conn.execute("UPDATE tasks SET title = 'changed' WHERE id = $1", _IDS[0])
        await conn.execute("DELETE FROM tasks WHERE id = $1", _IDS[2])
    finally:
        await conn.close()


def test_changes_recorded_before_the_changed_rows_tables_keep_their_numbers(admin_url: str) -> None:
    """Cursors held by clients stay valid across the upgrade: every row keeps its last change's number."""
    url = upgraded_across(admin_url, "0016", _seed_changes)
    changed = "SELECT id::text, seq FROM changed_tasks WHERE user_id = 'ann' ORDER BY seq"
    assert asyncio.run(_fetch(url, changed)) == [(_IDS[1], 2), (_IDS[0], 4)]
    assert asyncio.run(_fetch(url, "SELECT id::text, seq FROM deleted_tasks")) == [(_IDS[2], 5)]
    assert asyncio.run(_fetch(url, "SELECT seq FROM sync_checkpoints ORDER BY seq")) == [
        (s,) for s in range(1, 6)
    ]
    # Back at 0016, no row has a stamp: every earlier cursor is too old, none is misread.
    run_cli("database", "downgrade", "0016", "--no-prompt", env={"DATABASE_URL": url, "JWT_SECRET": SECRET})
    assert asyncio.run(_fetch(url, "SELECT seq, purged_seq FROM sync_clock")) == [(5, 5)]
