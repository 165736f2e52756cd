"""Moving tasks end to end on a real server: one task written, order by position, groups, If-Match."""

from __future__ import annotations

import uuid

import httpx

from tests.test_subtasks import new_list, new_task, refused_field, titles


def test_moves_change_the_order_and_write_only_the_moved_task(client: httpx.Client) -> None:
    a, b, c = (new_task(client, title=t) for t in "abc")
    assert titles(client) == ["a", "b", "c"]
    moved = client.post(f"/tasks/{c['id']}/move", json={"after": None})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["version"], moved.headers["ETag"]) == (2, '"2"')
    assert titles(client) == ["c", "a", "b"]
    assert client.post(f"/tasks/{a['id']}/move", json={"after": b["id"]}).status_code == 200
    assert titles(client) == ["c", "b", "a"]
    assert titles(client, sort="-position") == ["a", "b", "c"]
    assert client.get(f"/tasks/{b['id']}").json()["version"] == b["version"]


def test_a_move_that_leaves_the_task_in_place_changes_nothing(client: httpx.Client) -> None:
    a = new_task(client, title="a")
    b = new_task(client, title="b")
    stay = client.post(f"/tasks/{b['id']}/move", json={"after": a["id"]})
    assert stay.status_code == 200
    assert stay.json() == b


def test_a_move_into_a_list_and_under_a_parent(client: httpx.Client) -> None:
    groceries = new_list(client)
    task = new_task(client, title="milk")
    into = client.post(f"/tasks/{task['id']}/move", json={"after": None, "list_id": groceries})
    assert into.status_code == 200, into.text
    assert into.json()["list_id"] == groceries
    parent = new_task(client, title="shopping", list_id=groceries)
    under = client.post(f"/tasks/{task['id']}/move", json={"after": None, "parent_id": parent["id"]})
    assert under.status_code == 200, under.text
    assert (under.json()["parent_id"], under.json()["list_id"]) == (parent["id"], groceries)
    assert titles(client, parent_id=parent["id"]) == ["milk"]


def test_bad_moves_are_refused_and_change_nothing(client: httpx.Client) -> None:
    a = new_task(client, title="a")
    b = new_task(client, title="b", parent_id=a["id"])
    url = f"/tasks/{a['id']}/move"
    assert refused_field(client.post(url, json={"after": b["id"]})) == ["after"]  # not a sibling
    assert refused_field(client.post(url, json={"after": str(uuid.uuid4())})) == ["after"]
    assert refused_field(client.post(url, json={"after": a["id"]})) == ["after"]
    assert refused_field(client.post(url, json={})) == ["after"]
    assert refused_field(client.post(url, json={"after": None, "list_id": str(uuid.uuid4())})) == ["list_id"]
    assert client.post(url, json={"after": None}, headers={"If-Match": '"9"'}).status_code == 412
    assert client.post(f"/tasks/{uuid.uuid4()}/move", json={"after": None}).status_code == 404
    assert client.post("/tasks/nope/move", json={"after": None}).status_code == 404
    assert client.get(f"/tasks/{a['id']}").json() == a
