"""Two writes of one user never deadlock, whatever rows they lock: each waits for the other instead.

Each case forces the interleaving that used to deadlock. A third connection holds a row lock that the
first request must wait for; the second request starts once the first is waiting; the third connection
lets go once both are. Rows locked in opposite orders then close a cycle, and PostgreSQL aborts one
request (a 503). With the owner's lock taken first, the second request waits at its start and runs
after the first. Waiting is read from ``pg_stat_activity``, never guessed with a sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from tests.support import ApiServer, Tokens, driver_dsn

_WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type IN ('Lock', 'Advisory') AND pid <> pg_backend_pid()"
)


async def _until_waiting(conn: asyncpg.Connection, n: int) -> None:
    """Until ``n`` other sessions of this database wait for a lock (the requests under test)."""
    deadline = time.monotonic() + 30
    while await conn.fetchval(_WAITING) < n:
        assert time.monotonic() < deadline, f"{n} requests never waited for a lock"
        await asyncio.sleep(0.02)


async def _interleave(
    database_url: str,
    hold: str,
    first: Callable[[], Awaitable[httpx.Response]],
    second: Callable[[], Awaitable[httpx.Response]],
) -> tuple[httpx.Response, httpx.Response]:
    """``first`` waits for the row lock ``hold`` takes, ``second`` starts, then the lock goes."""
    holder = await asyncpg.connect(driver_dsn(database_url))
    watcher = await asyncpg.connect(driver_dsn(database_url))
    try:
        async with holder.transaction():
            await holder.execute(hold)
            one = asyncio.ensure_future(first())
            await _until_waiting(watcher, 1)
            two = asyncio.ensure_future(second())
            await _until_waiting(watcher, 2)
        return await one, await two
    finally:
        await holder.close()
        await watcher.close()


def _client(api: ApiServer, tokens: Tokens, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{api.url}/api/{user}", headers=tokens.headers(user), timeout=60)


async def _post(c: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await c.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_subtask_created_while_its_list_is_deleted(
    api: ApiServer, tokens: Tokens, user: str, database_url: str
) -> None:
    # The delete holds the list and cascades to the parent; the create locked the parent and then
    # wanted the list.
    async def scenario() -> None:
        async with _client(api, tokens, user) as c:
            lst = await _post(c, "/lists", {"name": "doomed"})
            parent = await _post(c, "/tasks", {"title": "parent", "list_id": lst["id"]})
            deleted, created = await _interleave(
                database_url,
                f"SELECT FROM tasks WHERE id = '{parent['id']}' FOR KEY SHARE",
                lambda: c.delete(f"/lists/{lst['id']}"),
                lambda: c.post("/tasks", json={"title": "sub", "parent_id": parent["id"]}),
            )
            assert deleted.status_code == 204, deleted.text
            # It ran after the delete: its parent is gone.
            assert created.status_code == 400, created.text
            assert created.json()["errors"][0]["field"] == "parent_id"
            assert (await c.get("/tasks")).json() == []

    asyncio.run(scenario())


def test_a_subtask_moved_while_clear_completed_deletes_its_parent(
    api: ApiServer, tokens: Tokens, user: str, database_url: str
) -> None:
    # Clear-completed locks the completed tasks by id (the parent, then a later one it waits for) and
    # then cascades to the subtask; the move locked the subtask and then wanted its parent.
    async def scenario() -> None:
        async with _client(api, tokens, user) as c:
            done = [await _post(c, "/tasks", {"title": t, "completed": True}) for t in ("one", "two")]
            # Two ids of one millisecond may come in either order: the parent is the one locked first.
            parent, later = sorted(done, key=lambda t: UUID(t["id"]))
            sub = await _post(c, "/tasks", {"title": "sub", "parent_id": parent["id"]})
            cleared, moved = await _interleave(
                database_url,
                f"SELECT FROM tasks WHERE id = '{later['id']}' FOR KEY SHARE",
                lambda: c.delete("/tasks", params={"completed": "true"}),
                lambda: c.post(f"/tasks/{sub['id']}/move", json={"after": None}),
            )
            assert cleared.status_code == 200, cleared.text
            # It ran after the clear, which took the subtask with its parent.
            assert moved.status_code == 404, moved.text
            assert (await c.get("/tasks")).json() == []

    asyncio.run(scenario())
