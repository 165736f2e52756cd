"""Tasks in lists, and subtasks, end to end on a real server: list_id and parent_id on create and update,
the rules the database keeps, the filters, and what deleting a parent or a list takes with it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support import Tokens


def new_list(client: httpx.Client, name: str = "L") -> str:
    response = client.post("/lists", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def new_task(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/tasks", json={"title": "t", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def titles(client: httpx.Client, **params: str) -> list[str]:
    response = client.get("/tasks", params={"sort": "position", **params})
    assert response.status_code == 200, response.text
    return [t["title"] for t in response.json()]


def refused_field(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    return [e["field"] for e in response.json()["errors"]]


def test_a_task_without_list_or_parent_is_a_top_level_inbox_task(client: httpx.Client) -> None:
    task = new_task(client)
    assert (task["list_id"], task["parent_id"]) == (None, None)
    assert isinstance(task["position"], str)
    assert task["position"]


def test_a_subtask_goes_in_its_parents_list_and_last_among_its_siblings(client: httpx.Client) -> None:
    groceries = new_list(client, "Groceries")
    parent = new_task(client, title="party", list_id=groceries)
    first = new_task(client, title="cake", parent_id=parent["id"])
    second = new_task(client, title="candles", parent_id=parent["id"])
    assert (first["list_id"], first["parent_id"]) == (groceries, parent["id"])
    assert second["position"].encode() > first["position"].encode()
    assert titles(client, parent_id=parent["id"]) == ["cake", "candles"]
    assert titles(client, list_id=groceries, parent_id="none") == ["party"]
    assert titles(client, list_id="inbox") == []
    wrong = client.post("/tasks", json={"title": "x", "parent_id": parent["id"], "list_id": new_list(client)})
    assert refused_field(wrong) == ["list_id"]


def test_list_and_parent_that_name_nothing_of_the_callers_are_the_same_400(
    client: httpx.Client, api_url: str, tokens: Tokens
) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=f"{api_url}/api/{other}", headers=tokens.headers(other)) as theirs:
        their_list = str(theirs.post("/lists", json={"name": "theirs"}).json()["id"])
        their_task = str(theirs.post("/tasks", json={"title": "theirs"}).json()["id"])
    for field, foreign in (("list_id", their_list), ("parent_id", their_task)):
        missing = client.post("/tasks", json={"title": "x", field: str(uuid.uuid4())})
        theirs_too = client.post("/tasks", json={"title": "x", field: foreign})
        assert refused_field(missing) == refused_field(theirs_too) == [field]
        assert missing.json()["errors"] == theirs_too.json()["errors"]
        assert refused_field(client.post("/tasks", json={"title": "x", field: "not-a-uuid"})) == [field]
        listed = client.get("/tasks", params={field: foreign})
        assert refused_field(listed) == [field]
    assert client.get("/tasks").json() == []


def test_one_level_only(client: httpx.Client) -> None:
    parent = new_task(client, title="parent")
    child = new_task(client, title="child", parent_id=parent["id"])
    assert refused_field(client.post("/tasks", json={"title": "grandchild", "parent_id": child["id"]})) == [
        "parent_id"
    ]
    other = new_task(client, title="other")
    assert refused_field(client.patch(f"/tasks/{parent['id']}", json={"parent_id": other["id"]})) == [
        "parent_id"
    ]
    assert refused_field(client.patch(f"/tasks/{other['id']}", json={"parent_id": other["id"]})) == [
        "parent_id"
    ]
    assert client.get(f"/tasks/{parent['id']}").json() == parent


def test_moving_a_parent_to_another_list_carries_its_subtasks(client: httpx.Client) -> None:
    home, work = new_list(client, "home"), new_list(client, "work")
    parent = new_task(client, title="parent", list_id=home)
    child = new_task(client, title="child", parent_id=parent["id"])
    moved = client.patch(f"/tasks/{parent['id']}", json={"list_id": work})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["list_id"], moved.json()["version"]) == (work, 2)
    after = client.get(f"/tasks/{child['id']}").json()
    assert (after["list_id"], after["parent_id"], after["version"]) == (
        work,
        parent["id"],
        child["version"] + 1,
    )


def test_deleting_a_parent_or_a_list_deletes_what_it_holds(client: httpx.Client) -> None:
    groceries = new_list(client)
    parent = new_task(client, title="parent")
    new_task(client, title="child", parent_id=parent["id"])
    new_task(client, title="in the list", list_id=groceries)
    new_task(client, title="kept")
    assert client.delete(f"/tasks/{parent['id']}").status_code == 204
    assert sorted(titles(client)) == ["in the list", "kept"]
    assert client.delete(f"/lists/{groceries}").status_code == 204
    assert titles(client) == ["kept"]


def test_a_keyed_create_of_a_subtask_answers_the_same_twice(client: httpx.Client) -> None:
    groceries = new_list(client)
    parent = new_task(client, list_id=groceries)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"title": "step", "parent_id": parent["id"]}
    first = client.post("/tasks", json=body, headers=key)
    again = client.post("/tasks", json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["list_id"] == groceries
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"


def test_group_filters_reject_bad_values(client: httpx.Client) -> None:
    assert refused_field(client.get("/tasks", params={"list_id": "nope"})) == ["list_id"]
    assert refused_field(client.get("/tasks", params={"parent_id": "inbox"})) == ["parent_id"]
    assert client.get("/tasks", params={"list_id": "inbox", "parent_id": "none"}).json() == []


def test_stats_and_bulk_actions_per_list(client: httpx.Client) -> None:
    groceries = new_list(client)
    new_task(client, title="milk", list_id=groceries)
    new_task(client, title="inbox one")
    assert client.get("/tasks/stats", params={"list_id": groceries}).json()["total"] == 1
    assert client.get("/tasks/stats", params={"list_id": "inbox"}).json()["total"] == 1
    done = client.post("/tasks/complete-all", json={"completed": True, "list_id": groceries})
    assert done.json() == {"updated": 1}
    assert [t["completed"] for t in client.get("/tasks", params={"list_id": "inbox"}).json()] == [False]
    assert client.delete("/tasks", params={"completed": "true", "list_id": "inbox"}).json() == {"deleted": 0}
    assert client.delete("/tasks", params={"completed": "true", "list_id": groceries}).json() == {
        "deleted": 1
    }
    assert titles(client) == ["inbox one"]
    for bad in (str(uuid.uuid4()), "nope"):
        assert refused_field(client.get("/tasks/stats", params={"list_id": bad})) == ["list_id"]
        body = {"completed": True, "list_id": bad}
        assert refused_field(client.post("/tasks/complete-all", json=body)) == ["list_id"]
        assert refused_field(client.delete("/tasks", params={"completed": "true", "list_id": bad})) == [
            "list_id"
        ]
    assert titles(client) == ["inbox one"]
