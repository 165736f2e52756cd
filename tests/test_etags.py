"""ETags on single-task responses, If-None-Match on GET and If-Match on every write."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.factories import task_payload
from tests.support import ApiServer, Tokens

PROBLEM_JSON = "application/problem+json"


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/tasks", json=task_payload(**fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


def current(client: httpx.Client, task_id: str) -> dict[str, Any]:
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def other_client(api: ApiServer, tokens: Tokens) -> Iterator[httpx.Client]:
    other = f"user-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=f"{api.url}/api/{other}", headers=tokens.headers(other), timeout=30) as c:
        yield c


# One write of each kind that If-Match guards: (name, request for a task id and headers, success status).
Write = Callable[[httpx.Client, str, dict[str, str]], httpx.Response]
WRITES: dict[str, tuple[Write, int]] = {
    "PUT": (lambda c, tid, h: c.put(f"/tasks/{tid}", json={"title": "changed"}, headers=h), 200),
    "PATCH": (lambda c, tid, h: c.patch(f"/tasks/{tid}", json={"priority": "high"}, headers=h), 200),
    "PATCH empty": (lambda c, tid, h: c.patch(f"/tasks/{tid}", json={}, headers=h), 200),
    "DELETE": (lambda c, tid, h: c.delete(f"/tasks/{tid}", headers=h), 204),
    "toggle": (lambda c, tid, h: c.patch(f"/tasks/{tid}/complete", headers=h), 200),
    "complete": (
        lambda c, tid, h: c.patch(f"/tasks/{tid}/complete", json={"completed": True}, headers=h),
        200,
    ),
}
write_kinds = pytest.mark.parametrize("kind", list(WRITES))


def assert_applied(client: httpx.Client, kind: str, before: dict[str, Any], response: httpx.Response) -> None:
    _, status = WRITES[kind]
    assert response.status_code == status, response.text
    if kind == "DELETE":
        assert response.content == b""
        assert client.get(f"/tasks/{before['id']}").status_code == 404
        return
    after = response.json()
    expected_version = before["version"] if kind == "PATCH empty" else before["version"] + 1
    assert after["version"] == expected_version
    assert response.headers["ETag"] == f'"{expected_version}"'
    assert current(client, before["id"]) == after


def assert_unchanged(client: httpx.Client, before: dict[str, Any]) -> None:
    assert current(client, before["id"]) == before


def bumped(client: httpx.Client, times: int = 1) -> dict[str, Any]:
    """A task whose version is ``1 + times``."""
    task = create(client, title="original", priority="low", completed=False)
    for i in range(times):
        response = client.patch(f"/tasks/{task['id']}", json={"description": f"edit {i}"})
        assert response.status_code == 200
        task = response.json()
    assert task["version"] == 1 + times
    return task


# --- ETag on every single-task response ------------------------------------------------------------


def test_every_single_task_response_carries_its_version_as_etag(client: httpx.Client) -> None:
    created = client.post("/tasks", json=task_payload())
    assert created.status_code == 201
    assert created.headers["ETag"] == '"1"'
    task_id = created.json()["id"]
    responses = [
        client.get(f"/tasks/{task_id}"),
        client.put(f"/tasks/{task_id}", json={"title": "put"}),
        client.patch(f"/tasks/{task_id}", json={"title": "patch"}),
        client.patch(f"/tasks/{task_id}/complete"),
        client.patch(f"/tasks/{task_id}/complete", json={"completed": False}),
        client.patch(f"/tasks/{task_id}", json={}),
        client.get(f"/tasks/{task_id}"),
    ]
    versions = []
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.headers["ETag"] == f'"{response.json()["version"]}"'
        versions.append(response.json()["version"])
    assert versions == [1, 2, 3, 4, 5, 5, 5]


# --- If-None-Match ---------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ['"1"', 'W/"1"', '"7", "1"', 'W/"3", W/"1"', "*", '"7" , "1"'])
def test_if_none_match_that_matches_is_304_without_body(client: httpx.Client, header: str) -> None:
    task = create(client)
    response = client.get(f"/tasks/{task['id']}", headers={"If-None-Match": header})
    assert response.status_code == 304, response.text
    assert response.content == b""
    assert response.headers["ETag"] == '"1"'


@pytest.mark.parametrize("header", ['"2"', 'W/"2"', '"0", "11"'])
def test_if_none_match_that_does_not_match_is_200(client: httpx.Client, header: str) -> None:
    task = create(client)
    response = client.get(f"/tasks/{task['id']}", headers={"If-None-Match": header})
    assert response.status_code == 200
    assert response.json() == task
    assert response.headers["ETag"] == '"1"'


def test_if_none_match_with_an_old_etag_after_a_change(client: httpx.Client) -> None:
    task = create(client)
    assert client.patch(f"/tasks/{task['id']}", json={"title": "new"}).status_code == 200
    response = client.get(f"/tasks/{task['id']}", headers={"If-None-Match": '"1"'})
    assert response.status_code == 200
    assert response.json()["title"] == "new"
    assert response.headers["ETag"] == '"2"'
    fresh = client.get(f"/tasks/{task['id']}", headers={"If-None-Match": '"2"'})
    assert fresh.status_code == 304


def test_if_none_match_on_missing_or_foreign_task_is_404(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    theirs = create(other_client)
    for task_id in (theirs["id"], str(uuid.uuid4())):
        for header in ('"1"', "*"):
            response = client.get(f"/tasks/{task_id}", headers={"If-None-Match": header})
            assert response.status_code == 404, (task_id, header, response.text)
            assert response.json()["detail"] == "Task not found"


# --- If-Match --------------------------------------------------------------------------------------


@write_kinds
@pytest.mark.parametrize(
    ("bumps", "header"),
    [(2, '"3"'), (1, "*"), (1, '"1", "2"')],
    ids=["current-version", "star", "list-containing-the-version"],
)
def test_matching_if_match_applies(client: httpx.Client, kind: str, bumps: int, header: str) -> None:
    task = bumped(client, bumps)
    write, _ = WRITES[kind]
    assert_applied(client, kind, task, write(client, task["id"], {"If-Match": header}))


@write_kinds
def test_if_match_stale_version_is_412_and_changes_nothing(client: httpx.Client, kind: str) -> None:
    task = bumped(client, 2)
    write, _ = WRITES[kind]
    for stale in ('"1"', '"2"', '"4"', '"1", "2"'):
        response = write(client, task["id"], {"If-Match": stale})
        assert response.status_code == 412, (stale, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
        problem = response.json()
        assert problem["status"] == 412
        assert problem["detail"]
        assert_unchanged(client, task)


@write_kinds
def test_weak_etag_never_matches_if_match(client: httpx.Client, kind: str) -> None:
    task = create(client)
    write, _ = WRITES[kind]
    for header in ('W/"1"', 'W/"1", W/"2"'):
        response = write(client, task["id"], {"If-Match": header})
        assert response.status_code == 412, (header, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
        assert_unchanged(client, task)


@write_kinds
@pytest.mark.parametrize("header", ["1", '"1', "'1'", '"1" "2"', "W/1", '"a b"', '"1"x'])
def test_malformed_if_match_is_400(client: httpx.Client, kind: str, header: str) -> None:
    task = create(client)
    write, _ = WRITES[kind]
    response = write(client, task["id"], {"If-Match": header})
    assert response.status_code == 400, (header, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "If-Match" in [e["field"] for e in response.json().get("errors", [])]
    assert_unchanged(client, task)


@write_kinds
def test_if_match_naming_a_version_no_task_can_have_is_412(client: httpx.Client, kind: str) -> None:
    # Versions are counters; a huge one simply does not match (never a 500).
    task = create(client)
    write, _ = WRITES[kind]
    for header in ('"99999999999"', '"999999999999999999"', '"0"'):
        response = write(client, task["id"], {"If-Match": header})
        assert response.status_code == 412, (header, response.text)
        assert_unchanged(client, task)


@write_kinds
def test_if_match_compares_tags_as_opaque_strings(client: httpx.Client, kind: str) -> None:
    # Strong comparison is character by character (RFC 9110 8.8.3.2): "01" and "1 " are other tags than
    # "1", and a well-formed tag we never hand out ("one", "-1") simply does not match.
    task = create(client)
    write, _ = WRITES[kind]
    for header in ('"01"', '"+1"', '"one"', '"-1"', '"1.0"'):
        response = write(client, task["id"], {"If-Match": header})
        assert response.status_code == 412, (header, response.text)
        assert_unchanged(client, task)


def test_if_none_match_compares_tags_as_opaque_strings(client: httpx.Client) -> None:
    task = create(client)
    response = client.get(f"/tasks/{task['id']}", headers={"If-None-Match": '"01"'})
    assert response.status_code == 200
    response = client.get(f"/tasks/{task['id']}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304


@write_kinds
def test_if_match_on_missing_or_foreign_task_is_404_not_412(
    client: httpx.Client, other_client: httpx.Client, kind: str
) -> None:
    theirs = create(other_client)
    write, _ = WRITES[kind]
    for task_id in (str(uuid.uuid4()), theirs["id"], "not-a-uuid"):
        for header in ('"1"', '"5"', "*", 'W/"1"'):
            response = write(client, task_id, {"If-Match": header})
            assert response.status_code == 404, (task_id, header, response.text)
            assert response.json()["detail"] == "Task not found"
    assert other_client.get(f"/tasks/{theirs['id']}").json() == theirs


def test_etag_from_one_write_is_accepted_by_the_next(client: httpx.Client) -> None:
    task = create(client)
    etag = client.get(f"/tasks/{task['id']}").headers["ETag"]
    for body in ({"title": "one"}, {"title": "two"}, {"completed": True}):
        response = client.patch(f"/tasks/{task['id']}", json=body, headers={"If-Match": etag})
        assert response.status_code == 200, response.text
        etag = response.headers["ETag"]
    response = client.patch(f"/tasks/{task['id']}/complete", headers={"If-Match": etag})
    assert response.status_code == 200
    assert response.json()["completed"] is False
    assert client.delete(f"/tasks/{task['id']}", headers={"If-Match": '"4"'}).status_code == 412
    assert (
        client.delete(f"/tasks/{task['id']}", headers={"If-Match": response.headers["ETag"]}).status_code
        == 204
    )


def test_without_if_match_writes_simply_apply(client: httpx.Client) -> None:
    task = bumped(client, 3)
    response = client.patch(f"/tasks/{task['id']}", json={"title": "last writer wins"})
    assert response.status_code == 200
    assert response.json()["version"] == 5


# --- concurrency -----------------------------------------------------------------------------------


async def _race(base_url: str, headers: dict[str, str], task_id: str, kind: str) -> list[int]:
    async with (
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as a,
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as b,
    ):
        guarded = {**headers, "If-Match": '"1"'}
        if kind == "PATCH":
            requests = [
                a.patch(f"/tasks/{task_id}", json={"title": "from a"}, headers=guarded),
                b.patch(f"/tasks/{task_id}", json={"title": "from b"}, headers=guarded),
            ]
        elif kind == "toggle":
            requests = [
                a.patch(f"/tasks/{task_id}/complete", headers=guarded),
                b.patch(f"/tasks/{task_id}/complete", headers=guarded),
            ]
        else:
            requests = [
                a.delete(f"/tasks/{task_id}", headers=guarded),
                b.delete(f"/tasks/{task_id}", headers=guarded),
            ]
        responses = await asyncio.gather(*requests)
    return sorted(r.status_code for r in responses)


@pytest.mark.parametrize(("kind", "success"), [("PATCH", 200), ("toggle", 200), ("DELETE", 204)])
def test_two_writers_with_the_same_if_match_one_wins(
    client: httpx.Client, api: ApiServer, tokens: Tokens, user: str, kind: str, success: int
) -> None:
    base_url = f"{api.url}/api/{user}"
    for _ in range(10):
        task = create(client, title="contended", completed=False)
        statuses = asyncio.run(_race(base_url, tokens.headers(user), task["id"], kind))
        if kind == "DELETE":
            # The loser finds the task gone: 404 or 412 are both honest, a second 204 is not.
            assert statuses[0] == success, statuses
            assert statuses[1] in (404, 412), statuses
            assert client.get(f"/tasks/{task['id']}").status_code == 404
            continue
        assert statuses == [success, 412], statuses
        after = current(client, task["id"])
        assert after["version"] == 2
        if kind == "PATCH":
            assert after["title"] in ("from a", "from b")
        else:
            assert after["completed"] is True
