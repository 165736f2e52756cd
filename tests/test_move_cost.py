"""A move reads the rows around the moved one, not the table: its cost does not grow with other users.

Counted by PostgreSQL itself (``pg_stat_xact_user_tables``: rows this transaction read from the table,
by sequential scan or through an index), with thousands of other users' rows in the table. A plan
that cannot use the sibling index (seen: a collation that leaked into the key lookups) reads them all.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from tests.test_organise_db import MOVE_LIST, connect, move, new_list, new_user, run, task

OTHERS = 3_000
# A move reads its row, its neighbours and the few rows the checks look up; far from OTHERS.
MOST_ROWS_READ = 60

_READ = (
    "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
    "WHERE relname = $1"
)


async def crowd(conn: asyncpg.Connection, table: str) -> None:
    """OTHERS rows of other users, then fresh planner statistics (as autovacuum would give)."""
    column = "title" if table == "tasks" else "name"
    await conn.execute(
        f"INSERT INTO {table} (id, user_id, {column}, created_at, updated_at) "  # noqa: S608 - constants
        "SELECT gen_random_uuid(), 'crowd-' || (i % 300), 'x', now(), now() FROM generate_series(1, $1) i",
        OTHERS,
    )
    await conn.execute(f"ANALYZE {table}")


async def rows_read(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(_READ, table))


@pytest.mark.parametrize("after", ["first", "between", "renumbered"])
def test_a_task_move_reads_a_handful_of_rows_however_full_the_table(database_url: str, after: str) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            await crowd(conn, "tasks")
            rows = [await task(conn, user, f"t{i}") for i in range(5)]
            if after == "renumbered":  # neighbours with no room under 255 characters between them
                await conn.execute(
                    "UPDATE tasks SET position = $2 WHERE id = $1", rows[1]["id"], "a0" + "0" * 252 + "1"
                )
            async with conn.transaction():
                before = await rows_read(conn, "tasks")
                anchor = {"first": None, "between": rows[1]["id"], "renumbered": rows[0]["id"]}[after]
                moved = await move(conn, user, rows[4]["id"], anchor)
                assert moved["version"] == 2
                if after == "renumbered":
                    assert len(moved["position"]) <= 3  # the group got short keys again
                assert await rows_read(conn, "tasks") - before <= MOST_ROWS_READ

    run(main)


def test_a_list_move_reads_a_handful_of_rows_however_full_the_table(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            await crowd(conn, "lists")
            first, second, third = [await new_list(conn, user, f"L{i}") for i in range(3)]
            async with conn.transaction():
                before = await rows_read(conn, "lists")
                params = {"owner": user, "target": third["id"], "after": first["id"], "versions": None}
                params["now"] = datetime.now(UTC)
                moved = await conn.fetchrow(MOVE_LIST.text, *MOVE_LIST.args(params))
                assert moved["position"] > first["position"]
                assert moved["position"] < second["position"]
                assert await rows_read(conn, "lists") - before <= MOST_ROWS_READ

    run(main)
