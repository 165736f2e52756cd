"""Helpers for the task-list tests (tests/test_listing_*.py, tests/test_task_bulk_actions.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.factories import task_payload

PROBLEM_JSON = "application/problem+json"


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    """A task with predictable fields: no description, tags or due date unless given."""
    body = {"description": None, "tags": [], "due_at": None, **fields}
    response = client.post("/tasks", json=task_payload(**body))
    assert response.status_code == 201, response.text
    return dict(response.json())


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()]


def listed(client: httpx.Client, **params: Any) -> list[str]:
    return ids(client.get("/tasks", params=params))


def assert_bad_param(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 400
    assert problem["detail"]
    assert field in [e["field"] for e in problem.get("errors", [])], problem


def links(response: httpx.Response) -> dict[str, str]:
    """The RFC 8288 ``Link`` header as {rel: target}."""
    header = response.headers.get("Link", "")
    found = re.findall(r'<([^>]*)>\s*;\s*rel="([^"]+)"', header)
    assert len(found) == header.count("rel="), header
    return {rel: target for target, rel in found}


def query_of(target: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(target).query, keep_blank_values=True)
