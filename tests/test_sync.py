"""``GET /sync`` end to end on a real server: snapshot pages, changes and tombstones, 410s, isolation."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import Tokens


def sync(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/sync", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"lists", "tasks", "deleted_lists", "deleted_tasks", "cursor", "more"}
    return body


def count(body: dict[str, Any]) -> int:
    return sum(len(body[k]) for k in ("lists", "tasks", "deleted_lists", "deleted_tasks"))


def catch_up(client: httpx.Client, cursor: str | None, limit: int = 500) -> tuple[list[dict[str, Any]], str]:
    """Every answer until ``more`` is false, and the last cursor."""
    pages = []
    while True:
        body = sync(client, limit=limit, **({} if cursor is None else {"cursor": cursor}))
        pages.append(body)
        cursor = body["cursor"]
        if not body["more"]:
            return pages, cursor


def task(client: httpx.Client, title: str = "t", **fields: Any) -> dict[str, Any]:
    response = client.post("/tasks", json={"title": title, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_list(client: httpx.Client, name: str = "l") -> dict[str, Any]:
    response = client.post("/lists", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def merged(pages: list[dict[str, Any]], kind: str) -> list[Any]:
    return [item for page in pages for item in page[kind]]


def test_snapshot_without_cursor_is_everything_as_get_returns_it(client: httpx.Client) -> None:
    groceries = make_list(client, "Groceries")
    tasks = [task(client, f"t{i}") for i in range(3)]
    inside = task(client, "in a list", list_id=groceries["id"])
    body = sync(client)
    assert body["more"] is False
    assert body["lists"] == client.get("/lists").json()
    assert sorted(body["tasks"], key=lambda t: t["id"]) == sorted(
        client.get("/tasks").json(), key=lambda t: t["id"]
    )
    assert {t["id"] for t in body["tasks"]} == {t["id"] for t in [*tasks, inside]}
    assert body["deleted_lists"] == body["deleted_tasks"] == []


def test_snapshot_comes_in_pages_each_object_once(client: httpx.Client) -> None:
    lists = [make_list(client, f"l{i}") for i in range(3)]
    tasks = [task(client, f"t{i}") for i in range(9)]
    pages, _ = catch_up(client, None, limit=4)
    assert [count(p) for p in pages] == [4, 4, 4]
    assert [p["more"] for p in pages] == [True, True, False]
    assert sorted(x["id"] for x in merged(pages, "lists")) == sorted(x["id"] for x in lists)
    got = [x["id"] for x in merged(pages, "tasks")]
    assert sorted(got) == sorted(x["id"] for x in tasks)
    assert len(got) == len(set(got))


def test_changes_since_cursor_current_state_and_tombstones(client: httpx.Client) -> None:
    kept, changed, gone = task(client, "kept"), task(client, "changed"), task(client, "gone")
    _, cursor = catch_up(client, None)
    assert sync(client, cursor=cursor) == {
        "lists": [], "tasks": [], "deleted_lists": [], "deleted_tasks": [], "cursor": cursor, "more": False,
    }  # fmt: skip
    client.patch(f"/tasks/{changed['id']}", json={"title": "one"}).raise_for_status()
    client.patch(f"/tasks/{changed['id']}", json={"title": "two"}).raise_for_status()
    assert client.delete(f"/tasks/{gone['id']}").status_code == 204
    new = task(client, "new")
    body = sync(client, cursor=cursor)
    assert body["more"] is False
    assert sorted(body["tasks"], key=lambda t: t["id"]) == sorted(
        [client.get(f"/tasks/{changed['id']}").json(), new], key=lambda t: t["id"]
    )
    assert body["tasks"][0]["id"] != kept["id"]
    assert body["deleted_tasks"] == [{"id": gone["id"], "version": gone["version"]}]
    # The new cursor has seen all of it.
    assert count(sync(client, cursor=body["cursor"])) == 0


def test_list_delete_cascades_and_clear_completed_leave_tombstones(client: httpx.Client) -> None:
    doomed = make_list(client, "doomed")
    in_list = [task(client, f"in{i}", list_id=doomed["id"]) for i in range(3)]
    parent = task(client, "parent")
    subtasks = [task(client, f"sub{i}", parent_id=parent["id"]) for i in range(2)]
    done = [task(client, f"done{i}", completed=True) for i in range(3)]
    _, cursor = catch_up(client, None)
    assert client.delete(f"/lists/{doomed['id']}").status_code == 204
    assert client.delete(f"/tasks/{parent['id']}").status_code == 204
    response = client.delete("/tasks", params={"completed": "true"})
    assert response.status_code == 200, response.text
    pages, _ = catch_up(client, cursor, limit=3)
    assert merged(pages, "deleted_lists") == [{"id": doomed["id"], "version": doomed["version"]}]
    expected = {(t["id"], t["version"]) for t in [*in_list, parent, *subtasks, *done]}
    got = [(t["id"], t["version"]) for t in merged(pages, "deleted_tasks")]
    assert sorted(got) == sorted(expected)
    assert merged(pages, "tasks") == merged(pages, "lists") == []


def test_complete_all_and_moves_come_as_current_rows(client: httpx.Client) -> None:
    tasks = [task(client, f"t{i}") for i in range(4)]
    other = make_list(client, "other")
    _, cursor = catch_up(client, None)
    client.post("/tasks/complete-all", json={"completed": True}).raise_for_status()
    moved = client.post(f"/tasks/{tasks[0]['id']}/move", json={"after": None, "list_id": other["id"]})
    assert moved.status_code == 200, moved.text
    renamed = client.patch(f"/lists/{other['id']}", json={"name": "renamed"})
    renamed.raise_for_status()
    pages, _ = catch_up(client, cursor, limit=2)
    now = {t["id"]: t for t in client.get("/tasks").json()}
    got = merged(pages, "tasks")
    assert len(got) == len(tasks) == 4
    assert sorted(t["id"] for t in got) == sorted(now)
    assert all(t == now[t["id"]] for t in got)
    assert merged(pages, "lists") == [renamed.json()]


@pytest.mark.parametrize("cursor", ["", "null", "x", "abc!", base64.urlsafe_b64encode(b"c1.5.0.zz").decode()])
def test_a_cursor_that_does_not_parse_is_410(client: httpx.Client, cursor: str) -> None:
    response = client.get("/sync", params={"cursor": cursor})
    assert response.status_code == 410
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "without a cursor" in response.json()["detail"]


def test_a_cursor_from_a_busier_user_is_410(client: httpx.Client, api_url: str, tokens: Tokens) -> None:
    for i in range(3):
        task(client, f"t{i}")
    _, cursor = catch_up(client, None)
    with httpx.Client(
        base_url=f"{api_url}/api/newcomer-{cursor[:6]}", headers=tokens.headers(f"newcomer-{cursor[:6]}")
    ) as other:
        assert other.get("/sync", params={"cursor": cursor}).status_code == 410


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=null", "limit=1e2", "limit=5&limit=6", "cursor=a&cursor=b", "since=x"],
)
def test_bad_query_is_400(client: httpx.Client, query: str) -> None:
    response = client.get(f"/sync?{query}")
    assert response.status_code == 400, response.text


def test_another_users_changes_never_show(
    client: httpx.Client, anon: httpx.Client, api_url: str, tokens: Tokens, user: str
) -> None:
    assert anon.get(f"/api/{user}/sync").status_code == 401
    _, cursor = catch_up(client, None)
    other_user = user + "-other"
    with httpx.Client(base_url=f"{api_url}/api/{other_user}", headers=tokens.headers(other_user)) as other:
        made = task(other, "theirs")
        assert other.delete(f"/tasks/{made['id']}").status_code == 204
        make_list(other, "theirs")
    assert count(sync(client, cursor=cursor)) == 0
    assert count(sync(client)) == 0
    assert client.get(f"{api_url}/api/{other_user}/sync").status_code == 403


def test_purged_history_makes_an_old_cursor_410(client: httpx.Client, user: str, database_url: str) -> None:
    """What was deleted more than 30 days ago is forgotten at a write: a cursor from before it is 410."""
    gone = task(client, "gone")
    _, old = catch_up(client, None)
    assert client.delete(f"/tasks/{gone['id']}").status_code == 204

    async def time_passes(aged: str | None = None) -> None:
        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            if aged is not None:
                await connection.execute(aged, user)
            # The purge runs at most once an hour per user, at a write.
            await connection.execute(
                "UPDATE sync_clock SET purge_checked_at = now() - interval '2 hours' WHERE user_id = $1", user
            )
        finally:
            await connection.close()

    asyncio.run(time_passes())
    task(client, "a write an hour later")
    _, recent = catch_up(client, old)
    asyncio.run(time_passes("UPDATE sync_checkpoints SET at = at - interval '31 days' WHERE user_id = $1"))
    task(client, "a write 31 days later")
    response = client.get("/sync", params={"cursor": old})
    assert response.status_code == 410
    assert "without a cursor" in response.json()["detail"]
    # The cursor taken after the purged deletion still works, and the fresh write comes.
    assert [t["title"] for t in sync(client, cursor=recent)["tasks"]] == ["a write 31 days later"]
