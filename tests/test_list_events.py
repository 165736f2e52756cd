"""Live updates of lists and moves, end to end: what the API wrote arrives on the caller's stream."""

from __future__ import annotations

import httpx

from tests.sse import open_stream
from tests.support import ApiServer, Tokens
from tests.test_events import create, expect, run


def test_list_events_carry_what_get_returns(api: ApiServer, tokens: Tokens, user: str) -> None:
    h = tokens.headers(user)
    base = f"/api/{user}/lists"

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            made = (await c.post(base, json={"name": "Groceries"}, headers=h)).json()
            created = await expect(stream, "list.created")
            assert created.data == {"type": "list.created", "list": made}

            renamed = (await c.patch(f"{base}/{made['id']}", json={"name": "Food"}, headers=h)).json()
            assert (await expect(stream, "list.updated")).data == {"type": "list.updated", "list": renamed}

            other = (await c.post(base, json={"name": "Work"}, headers=h)).json()
            await expect(stream, "list.created")
            moved = (await c.post(f"{base}/{other['id']}/move", json={"after": None}, headers=h)).json()
            assert (await expect(stream, "list.updated")).data == {"type": "list.updated", "list": moved}

            task = await create(c, user, h, title="milk", list_id=made["id"])
            await expect(stream, "task.created")
            bread = await create(c, user, h, title="bread", list_id=made["id"])
            await expect(stream, "task.created")
            r = await c.post(f"/api/{user}/tasks/{task['id']}/move", json={"after": bread["id"]}, headers=h)
            assert (await expect(stream, "task.updated")).data == {"type": "task.updated", "task": r.json()}

            assert (await c.delete(f"{base}/{made['id']}", headers=h)).status_code == 204
            events = {(await stream.next()).event for _ in range(2)}
            assert events == {"list.deleted", "tasks.changed"}

    run(api, scenario)
