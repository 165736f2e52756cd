"""Create, read, update, toggle and delete one task."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.factories import task_payload
from tests.support import Tokens


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/tasks", json=task_payload(**fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_returns_201_location_etag_and_defaults(client: httpx.Client, user: str) -> None:
    response = client.post("/tasks", json={"title": "  Buy milk  "})
    assert response.status_code == 201
    task = response.json()
    assert task["title"] == "Buy milk"
    assert task["user_id"] == user
    assert task["description"] is None
    assert task["completed"] is False
    assert task["completed_at"] is None
    assert task["priority"] == "medium"
    assert task["tags"] == []
    assert task["due_at"] is None
    assert task["version"] == 1
    assert task["created_at"] == task["updated_at"]
    assert task["created_at"].endswith("Z")
    assert uuid.UUID(task["id"]).version == 7
    assert response.headers["Location"] == f"/api/{user}/tasks/{task['id']}"
    assert response.headers["ETag"] == '"1"'
    assert client.get(response.headers["Location"].removeprefix(f"/api/{user}")).json() == task


def test_create_with_every_field(client: httpx.Client) -> None:
    task = create(
        client, title="Pay rent", description="Before the 5th", priority="high",
        tags=[" Home ", "MONEY"], due_at="2026-12-01T09:00:00+01:00", completed=True,
    )  # fmt: skip
    assert task["tags"] == ["home", "money"]
    assert task["due_at"] == "2026-12-01T08:00:00Z"
    assert task["completed"] is True
    assert task["completed_at"] is not None


def test_uuid_v7_ids_are_time_ordered(client: httpx.Client) -> None:
    ids = [create(client)["id"] for _ in range(3)]
    assert ids == sorted(ids)


def test_get_one_and_list(client: httpx.Client) -> None:
    task = create(client, title="Read")
    response = client.get(f"/tasks/{task['id']}")
    assert response.status_code == 200
    assert response.json() == task
    assert response.headers["ETag"] == '"1"'
    assert [t["id"] for t in client.get("/tasks").json()] == [task["id"]]


def test_list_is_newest_first_with_limit_and_offset(client: httpx.Client) -> None:
    ids = [create(client, title=f"t{i}")["id"] for i in range(5)]
    assert [t["id"] for t in client.get("/tasks").json()] == ids[::-1]
    page = client.get("/tasks", params={"limit": 2, "offset": 1}).json()
    assert [t["id"] for t in page] == ids[::-1][1:3]


def test_patch_changes_only_given_fields_and_bumps_version(client: httpx.Client) -> None:
    task = create(client, title="Old", description="keep", priority="low", tags=["a"])
    response = client.patch(f"/tasks/{task['id']}", json={"title": " New "})
    assert response.status_code == 200
    updated = response.json()
    assert updated["title"] == "New"
    assert (updated["description"], updated["priority"], updated["tags"]) == ("keep", "low", ["a"])
    assert updated["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(task["updated_at"])
    assert updated["created_at"] == task["created_at"]


def test_put_is_a_partial_update_too(client: httpx.Client) -> None:
    task = create(client, title="Old", priority="low")
    updated = client.put(f"/tasks/{task['id']}", json={"priority": "high"}).json()
    assert (updated["title"], updated["priority"], updated["version"]) == ("Old", "high", 2)


def test_null_clears_nullable_fields(client: httpx.Client) -> None:
    task = create(client, description="x", due_at="2030-01-01T00:00:00Z")
    updated = client.patch(f"/tasks/{task['id']}", json={"description": None, "due_at": None}).json()
    assert updated["description"] is None
    assert updated["due_at"] is None


def test_empty_update_changes_nothing(client: httpx.Client) -> None:
    task = create(client)
    response = client.patch(f"/tasks/{task['id']}", json={})
    assert response.status_code == 200
    assert response.json() == task


def test_completed_at_follows_completed(client: httpx.Client) -> None:
    task = create(client)
    done = client.patch(f"/tasks/{task['id']}", json={"completed": True}).json()
    assert done["completed"] is True
    assert done["completed_at"] is not None
    again = client.patch(f"/tasks/{task['id']}", json={"completed": True}).json()
    assert again["completed_at"] == done["completed_at"]  # stays the moment it became completed
    undone = client.patch(f"/tasks/{task['id']}", json={"completed": False}).json()
    assert undone["completed_at"] is None


def test_toggle_without_body_and_set_with_body(client: httpx.Client) -> None:
    task = create(client)
    first = client.patch(f"/tasks/{task['id']}/complete")
    assert first.status_code == 200
    assert (first.json()["completed"], first.json()["version"]) == (True, 2)
    assert first.json()["completed_at"] is not None
    assert first.headers["ETag"] == '"2"'
    second = client.patch(f"/tasks/{task['id']}/complete").json()
    assert (second["completed"], second["completed_at"], second["version"]) == (False, None, 3)
    kept = client.patch(f"/tasks/{task['id']}/complete", json={"completed": False}).json()
    assert (kept["completed"], kept["version"]) == (False, 4)
    done = client.patch(f"/tasks/{task['id']}/complete", json={"completed": True}).json()
    assert done["completed"] is True


def test_delete_then_gone(client: httpx.Client) -> None:
    task = create(client)
    response = client.delete(f"/tasks/{task['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/tasks/{task['id']}").status_code == 404
    assert client.delete(f"/tasks/{task['id']}").status_code == 404


def test_missing_and_non_uuid_ids_are_404(client: httpx.Client) -> None:
    for task_id in (str(uuid.uuid4()), "not-a-uuid", "1"):
        for method, path in (("GET", ""), ("PATCH", ""), ("PUT", ""), ("DELETE", ""), ("PATCH", "/complete")):
            response = client.request(
                method,
                f"/tasks/{task_id}{path}",
                json={} if path == "" and method in {"PUT", "PATCH"} else None,
            )
            assert response.status_code == 404, (method, task_id, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == "Task not found"


def test_update_without_a_body_is_a_clear_400(client: httpx.Client) -> None:
    task = create(client)
    response = client.patch(f"/tasks/{task['id']}")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "body", "message": "a JSON request body is required"}]


@pytest.mark.parametrize(("sub", "segment"), [("..", "%2E%2E"), (".", "%2E"), ("a b", "a%20b")])
def test_location_percent_encodes_the_user_segment(
    api_url: str, tokens: Tokens, sub: str, segment: str
) -> None:
    """A token subject that is a dot-segment cannot move the Location elsewhere (/api/../tasks/...)."""
    with httpx.Client(base_url=api_url, headers=tokens.headers(sub), timeout=30) as c:
        response = c.post(f"/api/{segment}/tasks", json={"title": "odd owner"})
        assert response.status_code == 201, response.text
        assert response.headers["Location"] == f"/api/{segment}/tasks/{response.json()['id']}"
        assert c.get(response.headers["Location"]).json() == response.json()
