"""The cases: one wrk request file per API call measured, and the check that its first request works."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from dataset import BIG_FILTER, LISTS_PER_USER, PAGE, SYNC_CHANGES
from servers import Server


@dataclass
class Case:
    name: str
    label: str
    baseline: str  # which baseline case the ratio is taken against
    expect: int  # status of a successful response (checked once before the run)
    lines: list[str]
    api_only: bool = True
    # What the first answer must hold besides its status (None: it does); else what is wrong with it.
    check_body: Callable[[Any], str | None] | None = None


def _holds(key: str, count: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = len(body if key == "" else body[key])
        return None if found == count else f"{found} {key or 'items'}, expected {count}"

    return check


# The move case: each user's first task goes first, then right after the user's second task, in turn,
# so every request really moves it. wrk's threads each keep ~32 requests in flight over consecutive
# lines, and the second starts 7919 mod n lines further (bench/wrk/requests.lua). So the lines come
# in blocks of MOVE_BLOCK users (their "first" moves, then their "after" moves: one user's two are 40
# lines apart, never in flight together), and MOVE_USERS makes n = 1760 lines, where the second thread
# starts 879 lines away: the threads never move one user's task at once (that would wait on its lock).
MOVE_USERS = 880
MOVE_BLOCK = 40


def move_lines(line: Callable[..., str], pairs: list[tuple[str, list[str]]]) -> list[str]:
    out = []
    for start in range(0, len(pairs), MOVE_BLOCK):
        block = pairs[start : start + MOVE_BLOCK]
        for after in ("first", "second"):
            for u, (task, other) in ((u, ts[:2]) for u, ts in block):
                target = "null" if after == "first" else f'"{other}"'
                out.append(line("POST", f"/api/{u}/tasks/{task}/move", u, f'{{"after": {target}}}'))
    return out


def build_cases(users: list[str], big: str, data: dict[str, Any], tokens: dict[str, str]) -> dict[str, Case]:
    def line(method: str, path: str, user: str, body: str = "") -> str:
        return "\t".join([method, path, tokens[user]] + ([body] if body else []))

    last = (data["big_high"] - 1) // PAGE * PAGE
    create_body = '{"title": "wrk created task", "priority": "high", "tags": ["work", "bench"]}'
    update_body = '{"title": "Edited by wrk", "description": "a small change"}'
    ids = data["task_ids"]
    pairs: dict[str, list[str]] = {}
    for u, t in ids:
        pairs.setdefault(u, []).append(t)
    moves = move_lines(line, list(pairs.items())[:MOVE_USERS])
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
        "move": Case(
            "move", "move (`POST /tasks/{id}/move`, first / after a sibling in turn)", "create", 200, moves,
        ),
        "lists": Case(
            "lists", f"lists (`GET /lists`, {LISTS_PER_USER} lists)", "list", 200,
            [line("GET", f"/api/{u}/lists", u) for u in data["list_users"]], check_body=_holds("", LISTS_PER_USER),
        ),
        "sync": Case(
            "sync", f"10k user, incremental sync (`GET /sync?cursor=…`, {SYNC_CHANGES} changes)", "list", 200,
            [line("GET", f"/api/{big}/sync?cursor={data['sync_cursor']}", big)],
            check_body=_holds("tasks", SYNC_CHANGES),
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
    wrong = None if resp.status_code == case.expect else f"status {resp.status_code}"
    if wrong is None and case.check_body is not None:
        wrong = case.check_body(resp.json())
    if wrong is not None:
        raise RuntimeError(f"{server.name} {case.name}: {method} {path} gave {wrong}: {resp.text[:300]}")


def health_ok(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False
