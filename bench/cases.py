"""The cases: one wrk request file per API call measured, and the check that its first request works."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from dataset import BIG_FILTER, PAGE
from servers import Server


@dataclass
class Case:
    name: str
    label: str
    baseline: str  # which baseline case the ratio is taken against
    expect: int  # status of a successful response (checked once before the run)
    lines: list[str]
    api_only: bool = True


def build_cases(users: list[str], big: str, data: dict[str, Any], tokens: dict[str, str]) -> dict[str, Case]:
    def line(method: str, path: str, user: str, body: str = "") -> str:
        return "\t".join([method, path, tokens[user]] + ([body] if body else []))

    last = (data["big_high"] - 1) // PAGE * PAGE
    create_body = '{"title": "wrk created task", "priority": "high", "tags": ["work", "bench"]}'
    update_body = '{"title": "Edited by wrk", "description": "a small change"}'
    ids = data["task_ids"]
    return {
        "list": Case(
            "list", "list 50 (`GET /tasks?limit=50`)", "list", 200,
            [line("GET", f"/api/{u}/tasks?limit={PAGE}", u) for u in users], api_only=False,
        ),
        "big_first": Case(
            "big_first", f"10k user, first page (`?{BIG_FILTER}&limit=50`)", "list", 200,
            [line("GET", f"/api/{big}/tasks?{BIG_FILTER}&limit={PAGE}", big)],
        ),
        "big_last": Case(
            "big_last", f"10k user, last page (`&offset={last}`)", "list", 200,
            [line("GET", f"/api/{big}/tasks?{BIG_FILTER}&limit={PAGE}&offset={last}", big)],
        ),
        "get": Case(
            "get", "get one (`GET /tasks/{id}`)", "list", 200,
            [line("GET", f"/api/{u}/tasks/{t}", u) for u, t in ids],
        ),
        "create": Case(
            "create", "create (`POST /tasks`)", "create", 201,
            [line("POST", f"/api/{u}/tasks", u, create_body) for u in users], api_only=False,
        ),
        "create_keyed": Case(
            "create_keyed", "create with a fresh `Idempotency-Key`", "create", 201,
            [line("POST", f"/api/{u}/tasks", u, create_body) + "\tkeyed" for u in users],
        ),
        "toggle": Case(
            "toggle", "toggle (`PATCH /tasks/{id}/complete`)", "create", 200,
            [line("PATCH", f"/api/{u}/tasks/{t}/complete", u) for u, t in ids],
        ),
        "update": Case(
            "update", "update (`PATCH /tasks/{id}`, small body)", "create", 200,
            [line("PATCH", f"/api/{u}/tasks/{t}", u, update_body) for u, t in ids],
        ),
    }  # fmt: skip


def check_first(server: Server, case: Case) -> None:
    """Send the case's first request once: a wrong status means the case would only measure errors."""
    method, path, token, *body = case.lines[0].split("\t")
    headers = {"Authorization": f"Bearer {token}"}
    if body:
        headers["Content-Type"] = "application/json"
    resp = httpx.request(
        method, server.url + path, headers=headers, content=body[0] if body else None, timeout=30
    )
    if resp.status_code != case.expect:
        raise RuntimeError(
            f"{server.name} {case.name}: {method} {path} gave {resp.status_code}: {resp.text[:300]}"
        )


def health_ok(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False
