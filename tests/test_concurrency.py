"""Atomic writes under concurrency: no lost update."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.support import ApiServer, Tokens, api_server
from tests.test_tasks_crud import create


async def _toggle_many(url: str, headers: dict[str, str], times: int) -> list[int]:
    limits = httpx.Limits(max_connections=times)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as c:
        responses = await asyncio.gather(*(c.patch(url) for _ in range(times)))
    return [r.status_code for r in responses]


def test_100_concurrent_toggles_are_all_applied(
    client: httpx.Client, api: ApiServer, tokens: Tokens, user: str
) -> None:
    task = create(client)
    url = f"{api.url}/api/{user}/tasks/{task['id']}/complete"
    statuses = asyncio.run(_toggle_many(url, tokens.headers(user), 100))
    assert statuses == [200] * 100
    after = client.get(f"/tasks/{task['id']}").json()
    assert after["version"] == task["version"] + 100
    assert after["completed"] is False  # toggled an even number of times
    assert after["completed_at"] is None


def test_concurrent_creates_all_land(client: httpx.Client, api: ApiServer, tokens: Tokens, user: str) -> None:
    async def run() -> list[int]:
        async with httpx.AsyncClient(headers=tokens.headers(user), timeout=60) as c:
            url = f"{api.url}/api/{user}/tasks"
            responses = await asyncio.gather(*(c.post(url, json={"title": f"t{i}"}) for i in range(50)))
        return [r.status_code for r in responses]

    assert asyncio.run(run()) == [201] * 50
    assert client.get("/tasks").headers["X-Total-Count"] == "50"


async def _seed(database_url: str, user: str, count: int) -> None:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(
            "INSERT INTO tasks (id, user_id, title, completed, priority, tags, created_at, updated_at, "
            "version) SELECT gen_random_uuid(), $1, 'bulk ' || i, i % 2 = 0, 'medium', '{}', now(), now(), 1 "
            "FROM generate_series(1, $2) AS i",
            user,
            count,
        )
    finally:
        await conn.close()


def test_concurrent_bulk_writes_on_a_large_list_do_not_deadlock(
    database_url: str, api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    # Opposite complete-all requests on a few thousand tasks lock rows in different orders and deadlock
    # unless every write of a user takes that user's lock first and bulk writes lock rows by id (without
    # both, 2,000 tasks deadlocked in every try). Waiting is the point here, so the statement timeout
    # (which a loaded test machine could reach) is out of the way. 2,000 tasks, not more: each of the 40
    # writes waits for the ones before it.
    asyncio.run(_seed(database_url, user, 2_000))
    with api_server({**api_env, "DATABASE_STATEMENT_TIMEOUT": "120"}) as api:
        _opposite_bulk_writes(api, tokens, user)


def _opposite_bulk_writes(api: ApiServer, tokens: Tokens, user: str) -> None:
    async def run() -> list[tuple[int, str]]:
        in_flight = asyncio.Semaphore(6)
        async with httpx.AsyncClient(headers=tokens.headers(user), timeout=300) as c:

            async def complete_all(value: bool) -> tuple[int, str]:
                async with in_flight:
                    url = f"{api.url}/api/{user}/tasks/complete-all"
                    response = await c.post(url, json={"completed": value})
                    return response.status_code, "" if response.is_success else response.text

            return await asyncio.gather(*(complete_all(i % 2 == 0) for i in range(40)))

    answers = asyncio.run(run())
    if answers != [(200, "")] * 40:
        # pytest.fail prints its message whole (an assert's message is cut): the answers and the server's
        # warnings say why.
        warnings = [line for line in api.output().splitlines() if '"status":200' not in line]
        pytest.fail(f"answers: {sorted(set(answers))}\nserver log:\n" + "\n".join(warnings[-40:]))
    with httpx.Client(headers=tokens.headers(user), timeout=300) as c:
        response = c.delete(f"{api.url}/api/{user}/tasks", params={"completed": "true"})
        assert response.status_code == 200


def test_the_task_quota_refuses_creates_past_it(api_env: dict[str, str], tokens: Tokens, user: str) -> None:
    with api_server({**api_env, "TASKS_MAX_PER_USER": "3"}) as server:
        with httpx.Client(base_url=f"{server.url}/api/{user}", headers=tokens.headers(user)) as c:
            ids = [c.post("/tasks", json={"title": f"t{i}"}).json()["id"] for i in range(3)]
            refused = c.post("/tasks", json={"title": "one too many"})
            assert refused.status_code == 409
            assert refused.headers["content-type"] == "application/problem+json"
            assert "at most 3 tasks" in refused.json()["detail"]
            assert c.get("/tasks").headers["X-Total-Count"] == "3"
            assert c.delete(f"/tasks/{ids[0]}").status_code == 204
            assert c.post("/tasks", json={"title": "room again"}).status_code == 201
        other = f"{user}-other"
        with httpx.Client(base_url=f"{server.url}/api/{other}", headers=tokens.headers(other)) as c:
            assert c.post("/tasks", json={"title": "a quota is per user"}).status_code == 201


def test_concurrent_creates_at_the_edge_of_the_quota_stop_exactly_at_it(
    api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    """45 of 50 taken, then 50 creates at once (half with an Idempotency-Key): exactly 5 get in."""

    async def run(url: str) -> list[int]:
        limits = httpx.Limits(max_connections=50)
        headers = tokens.headers(user)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
            for i in range(45):
                assert (await c.post("/tasks", json={"title": f"seed {i}"})).status_code == 201
            responses = await asyncio.gather(
                *(
                    c.post(
                        "/tasks",
                        json={"title": f"racer {i}"},
                        headers={"Idempotency-Key": f"racer-{i}"} if i % 2 else {},
                    )
                    for i in range(50)
                )
            )
            total = (await c.get("/tasks", params={"limit": 1})).headers["X-Total-Count"]
        assert total == "50"
        return sorted(r.status_code for r in responses)

    with api_server({**api_env, "TASKS_MAX_PER_USER": "50"}) as server:
        assert asyncio.run(run(f"{server.url}/api/{user}")) == [201] * 5 + [409] * 45


async def _bulk_writes_behind_a_held_lock(
    api: ApiServer, tokens: Tokens, user: str, database_url: str
) -> list[str]:
    """Hold the user's lock, send a complete-all and a clear-completed: what each waits in."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    holder, watcher = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT owner_locked($1)", user)
        async with httpx.AsyncClient(base_url=f"{api.url}/api/{user}", headers=tokens.headers(user)) as c:
            writes = [
                asyncio.create_task(c.post("/tasks/complete-all", json={"completed": True})),
                asyncio.create_task(c.delete("/tasks", params={"completed": "true"})),
            ]
            waiting: list[asyncpg.Record] = []
            async with asyncio.timeout(60):
                while len(waiting) < len(writes):  # a poll of pg_locks: PostgreSQL signals no wait
                    await asyncio.sleep(0.01)
                    waiting = await watcher.fetch(
                        "SELECT a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND NOT l.granted "
                        "AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 13)",
                        user,
                    )
            await transaction.commit()
            assert [(await w).status_code for w in writes] == [200, 200]
        return sorted(r["query"].split("(")[0] for r in waiting)
    finally:
        await holder.close()
        await watcher.close()


def test_a_bulk_write_takes_its_users_lock_before_its_statement_reads(
    api: ApiServer, client: httpx.Client, tokens: Tokens, user: str, database_url: str
) -> None:
    """A bulk statement that waited for the lock itself would read with a snapshot from before the wait,
    and PostgreSQL would re-check every row the write before it changed (quadratic on a big list)."""
    create(client)
    waits = asyncio.run(_bulk_writes_behind_a_held_lock(api, tokens, user, database_url))
    assert waits == ["SELECT owner_locked", "SELECT owner_locked"]
