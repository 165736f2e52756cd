"""The per-user quotas read a kept count (migration 0015): it follows every way rows come and go."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.support import Tokens, api_server, driver_dsn
from tests.test_migrations import upgraded_across


def test_the_task_quota_counts_rows_gone_by_cascade_and_clear_completed(
    api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    with (
        api_server({**api_env, "TASKS_MAX_PER_USER": "5"}) as server,
        httpx.Client(base_url=f"{server.url}/api/{user}", headers=tokens.headers(user)) as c,
    ):
        groceries = c.post("/lists", json={"name": "Groceries"}).json()["id"]
        milk = c.post("/tasks", json={"title": "milk", "list_id": groceries}).json()["id"]
        c.post("/tasks", json={"title": "bread", "list_id": groceries})
        c.post("/tasks", json={"title": "whole", "parent_id": milk})
        done = c.post("/tasks", json={"title": "done"}).json()["id"]
        c.post("/tasks", json={"title": "open"})
        assert c.post("/tasks", json={"title": "sixth"}).status_code == 409

        # The list's delete takes its two tasks and the subtask with it: three places free.
        assert c.delete(f"/lists/{groceries}").status_code == 204
        assert c.patch(f"/tasks/{done}/complete").status_code == 200
        assert c.delete("/tasks", params={"completed": "true"}).status_code == 200  # and one more
        created = [c.post("/tasks", json={"title": f"again {i}"}).status_code for i in range(5)]
        assert created == [201, 201, 201, 201, 409]
        assert c.get("/tasks").headers["X-Total-Count"] == "5"


async def _seed(url: str) -> None:
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        for user, count in (("ann", 3), ("bob", 1)):
            for i in range(count):
                await conn.execute(
                    "INSERT INTO tasks (id, user_id, title, created_at, updated_at, position) "
                    "VALUES (gen_random_uuid(), $1, $2, now(), now(), $3)",
                    user,
                    f"t{i}",
                    f"a{i}",
                )
        await conn.execute(
            "INSERT INTO lists (id, user_id, name, created_at, updated_at, position) "
            "VALUES (gen_random_uuid(), 'ann', 'kept', now(), now(), 'a0')"
        )
    finally:
        await conn.close()


async def _counts(url: str) -> dict[tuple[str, str], int]:
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        pairs = [(t, u) for t in ("tasks", "lists") for u in ("ann", "bob", "cat")]
        return {(t, u): await conn.fetchval("SELECT owned_count_locked($1, $2)", t, u) for t, u in pairs}
    finally:
        await conn.close()


def test_counts_start_from_the_rows_already_there(admin_url: str) -> None:
    url = upgraded_across(admin_url, "0014", _seed)
    assert asyncio.run(_counts(url)) == {
        ("tasks", "ann"): 3,
        ("tasks", "bob"): 1,
        ("tasks", "cat"): 0,
        ("lists", "ann"): 1,
        ("lists", "bob"): 0,
        ("lists", "cat"): 0,
    }
