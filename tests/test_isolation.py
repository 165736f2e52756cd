"""A user can never see, change or even detect another user's task."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx

from tests.support import ApiServer, Tokens
from tests.test_tasks_crud import create


def test_another_users_task_is_an_ordinary_404(api: ApiServer, tokens: Tokens) -> None:
    alice, mallory = f"alice-{uuid.uuid4().hex[:8]}", f"mallory-{uuid.uuid4().hex[:8]}"
    with (
        httpx.Client(base_url=f"{api.url}/api/{alice}", headers=tokens.headers(alice)) as a,
        httpx.Client(base_url=f"{api.url}/api/{mallory}", headers=tokens.headers(mallory)) as m,
    ):
        secret = create(a, title="Alice's secret", tags=["private"])
        missing = str(uuid.uuid4())
        attempts = [
            ("GET", "", None), ("PUT", "", {"title": "pwned"}), ("PATCH", "", {"completed": True}),
            ("DELETE", "", None), ("PATCH", "/complete", None), ("PATCH", "/complete", {"completed": True}),
        ]  # fmt: skip
        for method, suffix, body in attempts:
            theirs = m.request(method, f"/tasks/{secret['id']}{suffix}", json=body)
            nobody = m.request(method, f"/tasks/{missing}{suffix}", json=body)
            assert theirs.status_code == nobody.status_code == 404, (method, suffix)
            assert theirs.json() == nobody.json()
            assert theirs.headers.get("content-type") == nobody.headers.get("content-type")
            for header in ("ETag", "Location"):
                assert header not in theirs.headers
            # With If-Match too: a stale version must not reveal existence through a 412.
            stale = m.request(
                method, f"/tasks/{secret['id']}{suffix}", json=body, headers={"If-Match": '"99"'}
            )
            assert stale.status_code == 404, (method, suffix)

        # Mallory's lists, stats and bulk actions neither show nor touch Alice's task.
        assert m.get("/tasks").json() == []
        assert m.get("/tasks", params={"q": "secret"}).headers["X-Total-Count"] == "0"
        assert m.get("/tasks/stats").json() == {"total": 0, "completed": 0, "active": 0, "overdue": 0}
        assert m.post("/tasks/complete-all", json={"completed": True}).json() == {"updated": 0}
        assert m.delete("/tasks", params={"completed": "true"}).json() == {"deleted": 0}

        assert a.get(f"/tasks/{secret['id']}").json() == secret


def test_a_token_cannot_reach_another_path_even_with_the_right_task_id(
    api: ApiServer, tokens: Tokens
) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=f"{api.url}/api/{alice}", headers=tokens.headers(alice)) as a:
        task = create(a)
        response = httpx.get(f"{api.url}/api/{alice}/tasks/{task['id']}", headers=tokens.headers(bob))
        assert response.status_code == 403


def test_user_ids_are_opaque_strings(api: ApiServer, tokens: Tokens) -> None:
    for user in ("k3JZ8cQ1vO2pXyZ", "user@example.com", "名前", "a b", "x" * 255):
        quoted = f"/api/{quote(user, safe='')}/tasks"
        with httpx.Client(base_url=api.url, headers=tokens.headers(user)) as c:
            response = c.post(quoted, json={"title": "mine"})
            assert response.status_code == 201, (user, response.text)
            assert response.json()["user_id"] == user
            location = response.headers["Location"]
            assert c.get(location).json()["user_id"] == user
