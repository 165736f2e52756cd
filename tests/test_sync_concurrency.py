"""``/sync`` never skips a change: writers change one user's lists and tasks in every way the API offers
while a reader loops on its cursor; afterwards the reader's model equals the server's rows exactly."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import httpx

from tests.support import ApiServer, Tokens

WRITERS = 5
OPS = 40


class Model:
    """What a client keeps: id -> version, for lists and tasks, updated from /sync answers only."""

    def __init__(self) -> None:
        self.lists: dict[str, int] = {}
        self.tasks: dict[str, int] = {}

    def apply(self, body: dict[str, Any]) -> None:
        for kind, rows in (("lists", self.lists), ("tasks", self.tasks)):
            for row in body[kind]:
                # A row never comes back older than a copy already seen.
                assert row["version"] >= rows.get(row["id"], 0), row
                rows[row["id"]] = row["version"]
            for gone in body[f"deleted_{kind}"]:
                rows.pop(gone["id"], None)


async def _write(client: httpx.AsyncClient, rng: random.Random, statuses: list[int]) -> None:
    for _ in range(OPS):
        tasks = (await client.get("/tasks", params={"limit": 200})).json()
        lists = (await client.get("/lists")).json()
        some_task = rng.choice(tasks)["id"] if tasks else None
        some_list = rng.choice(lists)["id"] if lists else None
        top = [t["id"] for t in tasks if t["parent_id"] is None]
        op = rng.choice(
            ["create", "create", "in-list", "subtask", "update", "toggle", "delete", "move",
             "complete-all", "clear-completed", "list", "list-rename", "list-delete"]
        )  # fmt: skip
        if op == "create" or some_task is None:
            response = await client.post("/tasks", json={"title": "new", "completed": rng.random() < 0.3})
        elif op == "in-list" and some_list:
            response = await client.post("/tasks", json={"title": "in list", "list_id": some_list})
        elif op == "subtask" and top:
            response = await client.post("/tasks", json={"title": "sub", "parent_id": rng.choice(top)})
        elif op == "update":
            response = await client.patch(f"/tasks/{some_task}", json={"title": f"t{rng.random()}"})
        elif op == "toggle":
            response = await client.patch(f"/tasks/{some_task}/complete")
        elif op == "delete":
            response = await client.delete(f"/tasks/{some_task}")
        elif op == "move":
            body: dict[str, Any] = {"after": None}
            if rng.random() < 0.5:
                body["list_id"] = some_list
            response = await client.post(f"/tasks/{some_task}/move", json=body)
        elif op == "complete-all":
            response = await client.post("/tasks/complete-all", json={"completed": rng.random() < 0.5})
        elif op == "clear-completed":
            response = await client.delete("/tasks", params={"completed": "true"})
        elif op == "list-rename" and some_list:
            response = await client.patch(f"/lists/{some_list}", json={"name": f"l{rng.random()}"})
        elif op == "list-delete" and some_list:
            response = await client.delete(f"/lists/{some_list}")
        else:
            response = await client.post("/lists", json={"name": "list"})
        statuses.append(response.status_code)


async def _read(client: httpx.AsyncClient, model: Model, done: asyncio.Event) -> tuple[str, int]:
    """Loop on the cursor (small pages) until the writers are done; the cursor and the answers that
    carried something."""
    cursor: str | None = None
    busy = 0
    while not done.is_set():
        params: dict[str, Any] = {"limit": 7, **({} if cursor is None else {"cursor": cursor})}
        response = await client.get("/sync", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        model.apply(body)
        busy += any(body[k] for k in ("lists", "tasks", "deleted_lists", "deleted_tasks"))
        cursor = body["cursor"]
    assert cursor is not None
    return cursor, busy


async def _server_rows(database_url: str, user: str) -> tuple[dict[str, int], dict[str, int]]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        lists = await connection.fetch("SELECT id::text, version FROM lists WHERE user_id = $1", user)
        tasks = await connection.fetch("SELECT id::text, version FROM tasks WHERE user_id = $1", user)
    finally:
        await connection.close()
    return {r[0]: r[1] for r in lists}, {r[0]: r[1] for r in tasks}


async def _run(api: ApiServer, tokens: Tokens, user: str, database_url: str) -> None:
    base = f"{api.url}/api/{user}"
    limits = httpx.Limits(max_connections=WRITERS + 2)
    async with httpx.AsyncClient(
        base_url=base, headers=tokens.headers(user), timeout=120, limits=limits
    ) as c:
        for i in range(20):
            assert (await c.post("/tasks", json={"title": f"seed {i}"})).status_code == 201
        model, done, statuses = Model(), asyncio.Event(), list[int]()
        reader = asyncio.create_task(_read(c, model, done))
        await asyncio.gather(*(_write(c, random.Random(seed), statuses) for seed in range(WRITERS)))
        done.set()
        cursor, busy = await reader
        # Writers stopped: one catch-up more brings the model up to date.
        while True:
            body = (await c.get("/sync", params={"cursor": cursor, "limit": 7})).json()
            model.apply(body)
            cursor = body["cursor"]
            if not body["more"]:
                break
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    assert sum(200 <= s < 300 for s in statuses) > WRITERS * OPS // 2
    assert busy > 5  # the reader really read while the writers wrote
    lists, tasks = await _server_rows(database_url, user)
    assert model.lists == lists
    assert model.tasks == tasks


def test_a_reader_on_its_cursor_ends_with_the_servers_rows_exactly(
    api: ApiServer, tokens: Tokens, user: str, database_url: str
) -> None:
    asyncio.run(_run(api, tokens, user, database_url))
