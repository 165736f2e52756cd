"""The whole list at once: stats, complete-all and clear-completed, each only for its caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.listing import PROBLEM_JSON, assert_bad_param, create, listed


def test_stats_counts_only_the_callers_tasks(client: httpx.Client, other_client: httpx.Client) -> None:
    assert client.get("/tasks/stats").json() == {"total": 0, "completed": 0, "active": 0, "overdue": 0}
    past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    create(client, title="active, no due date")
    create(client, title="active, overdue", due_at=past)
    create(client, title="active, due later", due_at=future)
    create(client, title="completed, past due", due_at=past, completed=True)
    create(client, title="completed, no due date", completed=True)
    create(other_client, title="someone else's overdue", due_at=past)
    create(other_client, title="someone else's done", completed=True)
    response = client.get("/tasks/stats")
    assert response.status_code == 200
    assert response.json() == {"total": 5, "completed": 2, "active": 3, "overdue": 1}


def test_stats_follow_changes(client: httpx.Client) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    task = create(client, due_at=past)
    assert client.get("/tasks/stats").json() == {"total": 1, "completed": 0, "active": 1, "overdue": 1}
    assert client.patch(f"/tasks/{task['id']}/complete").status_code == 200
    assert client.get("/tasks/stats").json() == {"total": 1, "completed": 1, "active": 0, "overdue": 0}


def test_complete_all_counts_only_changed_tasks(client: httpx.Client, other_client: httpx.Client) -> None:
    a = create(client, title="a")
    b = create(client, title="b")
    c = create(client, title="c", completed=True)
    theirs = create(other_client, title="theirs")

    response = client.post("/tasks/complete-all", json={"completed": True})
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 2}
    after = {t["id"]: t for t in client.get("/tasks").json()}
    for task in (a, b):
        now = after[task["id"]]
        assert now["completed"] is True
        assert now["completed_at"] is not None
        assert now["version"] == 2
        assert datetime.fromisoformat(now["updated_at"]) > datetime.fromisoformat(task["updated_at"])
    assert after[c["id"]] == c  # already completed: untouched, version and completed_at kept
    assert other_client.get(f"/tasks/{theirs['id']}").json() == theirs

    again = client.post("/tasks/complete-all", json={"completed": True})
    assert again.json() == {"updated": 0}
    assert {t["id"]: t["version"] for t in client.get("/tasks").json()} == {
        a["id"]: 2,
        b["id"]: 2,
        c["id"]: 1,
    }

    undone = client.post("/tasks/complete-all", json={"completed": False})
    assert undone.status_code == 200
    assert undone.json() == {"updated": 3}
    for task in client.get("/tasks").json():
        assert task["completed"] is False
        assert task["completed_at"] is None
    assert {t["id"]: t["version"] for t in client.get("/tasks").json()} == {
        a["id"]: 3,
        b["id"]: 3,
        c["id"]: 2,
    }
    assert other_client.get(f"/tasks/{theirs['id']}").json() == theirs


def test_complete_all_with_no_tasks(client: httpx.Client) -> None:
    response = client.post("/tasks/complete-all", json={"completed": True})
    assert response.status_code == 200
    assert response.json() == {"updated": 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "completed"),
        ({"completed": "yes"}, "completed"),
        ({"completed": 1}, "completed"),
        ({"completed": None}, "completed"),
        ({"completed": True, "priority": "high"}, "priority"),
    ],
)
def test_complete_all_rejects_bad_bodies(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    task = create(client)
    assert_bad_param(client.post("/tasks/complete-all", json=body), field)
    assert client.get(f"/tasks/{task['id']}").json() == task


@pytest.mark.parametrize("content", [b"", b"[]", b"true", b"{"])
def test_complete_all_rejects_non_object_bodies(client: httpx.Client, content: bytes) -> None:
    task = create(client)
    response = client.post(
        "/tasks/complete-all", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert client.get(f"/tasks/{task['id']}").json() == task


def test_clear_completed_deletes_only_the_callers_completed_tasks(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    keep = create(client, title="keep")
    for i in range(3):
        create(client, title=f"done {i}", completed=True)
    theirs = create(other_client, completed=True)
    response = client.delete("/tasks", params={"completed": "true"})
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 3}
    assert listed(client) == [keep["id"]]
    assert other_client.get(f"/tasks/{theirs['id']}").status_code == 200
    again = client.delete("/tasks", params={"completed": "true"})
    assert again.json() == {"deleted": 0}
    assert listed(client) == [keep["id"]]


@pytest.mark.parametrize("params", [{}, {"completed": "false"}, {"completed": "maybe"}, {"status": "all"}])
def test_clear_without_completed_true_is_400_and_deletes_nothing(
    client: httpx.Client, params: dict[str, str]
) -> None:
    created = {create(client)["id"], create(client, completed=True)["id"]}
    response = client.delete("/tasks", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"]
    assert set(listed(client)) == created
