"""An incremental sync reads the changed rows (their changes, then the rows themselves, in one statement),
not the caller's table, whichever plan PostgreSQL picks.

The changes statement is a prepared statement: PostgreSQL plans it for its parameters five times, then
may keep a generic plan. Both are run here (``plan_cache_mode``) for a user whose 5,000 tasks came in
one statement (an import: 5,000 changes then share one number, which looks unselective to the planner)
followed by 10 changes; the buffers the statement touches are counted by ``EXPLAIN (ANALYZE, BUFFERS)``.
Seen before the fix: 330 (a hash join over the user's tasks) and 11 walks of the user's index range
(generic); without the ``LIMIT 1`` of the row lookups, the generic plan walked the user's tasks again.
"""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

import asyncpg
import pytest

from backend.sync.repository import CHANGES_SQL, ROW_SLICES, TRACKED
from tests.test_organise_db import connect, new_user

TASKS = 5_000
CHANGES = 10
# Ten changes cost a few index probes each: far below what reading 5,000 tasks costs.
MOST_BUFFERS = 120
_MAX = UUID(int=(1 << 128) - 1)
_TYPES = {"owner": "varchar", "seq": "bigint", "kind": "integer", "after": "uuid", "n": "integer"}


async def seed(conn: asyncpg.Connection, user: str) -> int:
    """TASKS tasks in one transaction, then CHANGES updates each in its own: the number before them."""
    await conn.execute(
        "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
        "SELECT gen_random_uuid(), $1, 't' || i, now(), now() FROM generate_series(1, $2) i",
        user,
        TASKS,
    )
    before = int(await conn.fetchval("SELECT seq FROM sync_clock WHERE user_id = $1", user))
    ids = await conn.fetch("SELECT id FROM tasks WHERE user_id = $1 LIMIT $2", user, CHANGES)
    for (task_id,) in ids:
        await conn.execute("UPDATE tasks SET title = 'changed' WHERE id = $1", task_id)
    await conn.execute("ANALYZE tasks")
    return before


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
def test_ten_changes_of_a_5000_task_user_touch_a_few_pages(database_url: str, mode: str) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            since = await seed(conn, user)
            # The app's statement, prepared as asyncpg prepares it (positional parameters).
            names = CHANGES_SQL.names
            types = ", ".join(_TYPES[name] for name in names)
            await conn.execute(f"PREPARE changes ({types}) AS {CHANGES_SQL.text}")
            await conn.execute(f"SET plan_cache_mode = {mode}")
            # EXECUTE takes no bind parameters; these values are the test's own (a generated user id).
            values = {"owner": f"'{user}'", "seq": since, "kind": 99, "after": f"'{_MAX}'", "n": 501}
            execute = f"EXECUTE changes ({', '.join(str(values[name]) for name in names)})"
            rows = await conn.fetch(execute)
            # The changed tasks themselves come in the same statement, each as it is now.
            title = TRACKED[1].columns.index("title")
            assert [row[ROW_SLICES[1]][title] for row in rows] == ["changed"] * CHANGES
            plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}")
            top = json.loads(plan)[0]["Plan"]
            assert top["Actual Rows"] == CHANGES
            assert top["Shared Hit Blocks"] + top["Shared Read Blocks"] <= MOST_BUFFERS

    asyncio.run(asyncio.wait_for(main(), 120))
