"""The schema comes from real Alembic migrations, driven by `litestar database ...`."""

from __future__ import annotations

import asyncio

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
