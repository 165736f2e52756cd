"""Atomic writes under concurrency: no lost update."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import ApiServer, Tokens
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
