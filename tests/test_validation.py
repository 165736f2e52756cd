"""Bad input gets a clear 400 (or 413/415) problem document naming what is wrong, and changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.test_tasks_crud import create


def errors_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "about:blank"
    assert body["title"] == "Bad Request"
    assert body["status"] == 400
    assert body["detail"]
    return {e["field"]: e["message"] for e in body.get("errors", [])}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   \t\n "}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"title": "x" * 10_000}, "title"),
        ({"title": None}, "title"),
        ({"title": 5}, "title"),
        ({"title": "a\u0000b"}, "title"),
        ({"title": "ok", "description": "d" * 1001}, "description"),
        ({"title": "ok", "description": "nul\u0000"}, "description"),
        ({"title": "ok", "completed": "true"}, "completed"),
        ({"title": "ok", "completed": 1}, "completed"),
        ({"title": "ok", "priority": "urgent"}, "priority"),
        ({"title": "ok", "priority": "HIGH"}, "priority"),
        ({"title": "ok", "tags": "home"}, "tags"),
        ({"title": "ok", "tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"title": "ok", "tags": ["home", " HOME "]}, "tags"),
        ({"title": "ok", "tags": ["  "]}, "tags[0]"),
        ({"title": "ok", "tags": ["x" * 31]}, "tags[0]"),
        ({"title": "ok", "tags": [1]}, "tags[0]"),
        ({"title": "ok", "due_at": "2026-12-01T10:00:00"}, "due_at"),
        ({"title": "ok", "due_at": "tomorrow"}, "due_at"),
        ({"title": "ok", "due_at": 1764583200}, "due_at"),
        ({"title": "ok", "id": "0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21"}, "id"),
        ({"title": "ok", "user_id": "someone"}, "user_id"),
        ({"title": "ok", "created_at": "2026-01-01T00:00:00Z"}, "created_at"),
        ({"title": "ok", "version": 7}, "version"),
        ({"title": "ok", "completed_at": None}, "completed_at"),
        ({"title": "ok", "titel": "typo"}, "titel"),
    ],
)
def test_create_rejects_and_names_the_field(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    errors = errors_of(client.post("/tasks", json=body))
    assert field in errors, errors
    assert client.get("/tasks").json() == []


def test_every_offending_field_is_listed(client: httpx.Client) -> None:
    body = {"title": 5, "priority": "urgent", "tags": "x", "id": "1", "owner": "me"}
    assert set(errors_of(client.post("/tasks", json=body))) == {"title", "priority", "tags", "id", "owner"}


def test_post_init_rules_are_all_listed(client: httpx.Client) -> None:
    body = {"title": " ", "description": "d" * 1001, "tags": ["a", "A"]}
    assert set(errors_of(client.post("/tasks", json=body))) == {"title", "description", "tags"}


def test_title_is_measured_after_trimming(client: httpx.Client) -> None:
    title = "x" * 255
    assert client.post("/tasks", json={"title": f"  {title}  "}).json()["title"] == title


def test_error_example_shape(client: httpx.Client, user: str) -> None:
    response = client.post("/tasks", json={"title": "   "})
    assert response.json() == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": f"Validation failed for POST /api/{user}/tasks",
        "errors": [{"field": "title", "message": "must not be blank"}],
    }


# (body, the start of the message that must name the problem). Every write route decodes the same way.
BROKEN_JSON = [
    (b"{bad json", "malformed JSON at byte 1"),
    (b'{"title": "x"', "malformed JSON at byte 13"),
    (b"[[[[", "malformed JSON at byte 4"),
    (b'{"title":1,}', "malformed JSON at byte 11: trailing comma"),
    (b'{"x":1,', "malformed JSON at byte 7"),
    (b'{"title":"a","x":NaN}', "malformed JSON at byte 17"),
    (b'{"title": "a"} trailing', "malformed JSON at byte 15: trailing characters"),
    (b'{"title": "\\ud800"}', "malformed JSON at byte 11: a lone UTF-16 surrogate"),
    (b'{"title": "\xed\xa0\x80"}', "malformed JSON at byte 11: not valid UTF-8"),
    (b'{"title": "\xff"}', "malformed JSON at byte 11: not valid UTF-8"),
    (b'{"title": "\xe2\x82', "malformed JSON at byte 11: not valid UTF-8"),
    (b"   ", "the request body is empty or white space"),
    (b"[" * 10_000 + b"]" * 10_000, "JSON is nested too deeply"),
    (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "JSON is nested too deeply"),
]
NUMBERS = [
    (b'{"title": 1e999}', "title", "Number out of range"),
    (b'{"title": "x", "completed": ' + b"9" * 5000 + b"}", "completed", "Number out of range"),
    (b'{"title": -1e400}', "title", "Number out of range"),
]
WRITE_ROUTES = [
    ("POST", "/tasks"),
    ("PUT", "/tasks/{id}"),
    ("PATCH", "/tasks/{id}"),
    ("POST", "/tasks/complete-all"),
]


@pytest.mark.parametrize(("raw", "message"), BROKEN_JSON)
def test_malformed_json_is_400_saying_where(client: httpx.Client, raw: bytes, message: str) -> None:
    task = create(client)
    for method, path in WRITE_ROUTES:
        response = client.request(
            method, path.format(id=task["id"]), content=raw, headers={"Content-Type": "application/json"}
        )
        errors = errors_of(response)
        assert errors["body"].startswith(message), (method, path, errors)
    response = client.patch(
        f"/tasks/{task['id']}/complete", content=raw, headers={"Content-Type": "application/json"}
    )
    assert errors_of(response)["body"].startswith(message)
    assert client.get("/tasks").json() == [task]


@pytest.mark.parametrize(("raw", "field", "message"), NUMBERS)
def test_huge_numbers_are_400_naming_the_field(
    client: httpx.Client, raw: bytes, field: str, message: str
) -> None:
    errors = errors_of(client.post("/tasks", content=raw, headers={"Content-Type": "application/json"}))
    assert errors[field] == message, errors
    assert client.get("/tasks").json() == []


def test_empty_body_is_400_saying_a_body_is_required(client: httpx.Client) -> None:
    task = create(client)
    for method, path in WRITE_ROUTES:
        response = client.request(
            method, path.format(id=task["id"]), headers={"Content-Type": "application/json"}
        )
        assert errors_of(response) == {"body": "a JSON request body is required"}, (method, path)


@pytest.mark.parametrize(
    ("raw", "what"), [(b"[]", "an array"), (b'"title"', "a string"), (b"null", "null"), (b"42", "a number")]
)
def test_body_must_be_an_object(client: httpx.Client, raw: bytes, what: str) -> None:
    errors = errors_of(client.post("/tasks", content=raw, headers={"Content-Type": "application/json"}))
    assert errors == {"body": f"must be a JSON object, not {what}"}


def test_non_json_content_type_is_415(client: httpx.Client) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = client.post("/tasks", content=b'{"title": "x"}', headers={"Content-Type": content_type})
        assert response.status_code == 415, content_type
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/tasks").json() == []


def test_json_with_charset_is_fine(client: httpx.Client) -> None:
    response = client.post(
        "/tasks", content=b'{"title": "x"}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 201


def test_body_over_64_kib_is_413(client: httpx.Client) -> None:
    body = b'{"title": "x", "description": "' + b"d" * (65 * 1024) + b'"}'
    response = client.post("/tasks", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_failed_update_changes_nothing(client: httpx.Client) -> None:
    task = create(client, title="Keep me", priority="low")
    for body in (
        {"title": ""},
        {"title": None},
        {"priority": "urgent"},
        {"version": 9},
        {"title": "ok", "x": 1},
    ):
        for method in ("PUT", "PATCH"):
            errors_of(client.request(method, f"/tasks/{task['id']}", json=body))
    assert client.get(f"/tasks/{task['id']}").json() == task


def test_update_allows_null_only_where_nullable(client: httpx.Client) -> None:
    task = create(client)
    for field in ("title", "completed", "priority", "tags"):
        assert field in errors_of(client.patch(f"/tasks/{task['id']}", json={field: None}))


def test_toggle_body_must_be_a_boolean(client: httpx.Client) -> None:
    task = create(client)
    for body in ({}, {"completed": "yes"}, {"completed": None}, {"completed": True, "title": "x"}):
        errors_of(client.patch(f"/tasks/{task['id']}/complete", json=body))
    assert client.get(f"/tasks/{task['id']}").json()["version"] == 1


@pytest.mark.parametrize("user_path", ["x" * 300, "a%00b"])
def test_odd_path_user_ids_are_403_not_500(client: httpx.Client, api_url: str, user_path: str) -> None:
    response = httpx.get(f"{api_url}/api/{user_path}/tasks", headers=dict(client.headers))
    assert response.status_code == 403


def test_a_null_body_is_400_on_every_write_route(client: httpx.Client) -> None:
    # The toggle's body is optional, but `null` is a body, and not an object (it was a 500).
    task = create(client)
    routes = [*WRITE_ROUTES, ("PATCH", "/tasks/{id}/complete")]
    for method, path in routes:
        response = client.request(
            method, path.format(id=task["id"]), content=b"null", headers={"Content-Type": "application/json"}
        )
        assert errors_of(response) == {"body": "must be a JSON object, not null"}, (method, path)
    assert client.get(f"/tasks/{task['id']}").json() == task


# The latest instant a timestamp can hold is 9999-12-31T23:59:59.999999 UTC: this one lies an hour past it.
PAST_THE_END = "9999-12-31T23:59:59-01:00"


def _fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


@pytest.mark.parametrize("key", [None, "out-of-range-key"])
def test_an_out_of_range_due_at_is_a_400_naming_it_on_create(client: httpx.Client, key: str | None) -> None:
    headers = {"Idempotency-Key": f"{key}-{uuid.uuid4()}"} if key else {}
    response = client.post("/tasks", json={"title": "far", "due_at": PAST_THE_END}, headers=headers)
    assert response.status_code == 400, response.text
    assert _fields(response) == ["due_at"]
    assert client.get("/tasks").headers["X-Total-Count"] == "0"


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_an_out_of_range_due_at_is_a_400_naming_it_on_update(client: httpx.Client, method: str) -> None:
    task = create(client)
    response = client.request(method, f"/tasks/{task['id']}", json={"due_at": PAST_THE_END})
    assert response.status_code == 400, response.text
    assert _fields(response) == ["due_at"]
    assert client.get(f"/tasks/{task['id']}").json()["version"] == task["version"]


@pytest.mark.parametrize("name", ["due_before", "due_after"])
def test_an_out_of_range_bound_is_a_400_naming_it(client: httpx.Client, name: str) -> None:
    response = client.get("/tasks", params={name: PAST_THE_END})
    assert response.status_code == 400, response.text
    assert _fields(response) == [name]


@pytest.mark.parametrize("key", [None, "year-one-key"])
def test_the_first_instant_comes_back_with_its_zone(client: httpx.Client, key: str | None) -> None:
    headers = {"Idempotency-Key": f"{key}-{uuid.uuid4()}"} if key else {}
    created = client.post("/tasks", json={"title": "old", "due_at": "0001-01-01T00:00:00Z"}, headers=headers)
    assert created.status_code == 201, created.text
    fetched = client.get(f"/tasks/{created.json()['id']}").json()
    listed = client.get("/tasks", params={"due_before": "0001-01-01T00:00:01Z"}).json()
    for body in (created.json(), fetched, *listed):
        assert body["due_at"] in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"), body
        assert body["created_at"].endswith(("Z", "+00:00"))
