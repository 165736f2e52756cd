"""Listing at scale: every list, stats and bulk query uses an index, never a scan of all users' tasks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import httpx

from backend.tasks.filters import TaskFilter
from backend.tasks.models import Priority
from backend.tasks.repository import DELETE_COMPLETED, SET_COMPLETED_ALL, STATS, list_statements
from backend.tasks.schemas import SORTABLE, SortKey
from tests.listing import links, query_of
from tests.support import ApiServer, Tokens

BIG_USER_TASKS = 10_000
OTHER_USERS = 1_000
TASKS_PER_OTHER_USER = 50

_SEED = """
INSERT INTO tasks (id, user_id, title, description, completed, completed_at, priority, tags, due_at,
                   created_at, updated_at, version)
SELECT gen_random_uuid(),
       {user},
       'task ' || g || CASE WHEN g % 50 = 0 THEN ' report' ELSE '' END,
       CASE WHEN g % 3 = 0 THEN 'some details ' || g END,
       g % 4 = 0,
       CASE WHEN g % 4 = 0 THEN now() - (g || ' minutes')::interval END,
       (ARRAY['low', 'medium', 'high'])[1 + g % 3]::task_priority,
       CASE WHEN g % 10 = 0 THEN ARRAY['home']::varchar[]
            WHEN g % 10 = 1 THEN ARRAY['work', 'urgent']::varchar[]
            ELSE ARRAY[]::varchar[] END,
       CASE WHEN g % 2 = 0 THEN now() + ((g % 200 - 100) || ' days')::interval END,
       now() - (g || ' seconds')::interval,
       now() - (g || ' seconds')::interval,
       1
FROM generate_series(1, {count}) AS g
"""


def _queries(user: str) -> dict[str, tuple[str, list[Any]]]:
    """The very statements the service issues for a page, its count, the stats and the bulk actions."""
    now = datetime.now(UTC)
    filters = {
        "none": TaskFilter(),
        "completed": TaskFilter(completed=True),
        "active": TaskFilter(completed=False),
        "priority": TaskFilter(priority=Priority.HIGH),
        "tag": TaskFilter(tag="home"),
        "q": TaskFilter(q="report"),
        "due_after": TaskFilter(due_after=now),
        "due_before": TaskFilter(due_before=now),
        "due_range": TaskFilter(due_after=now - timedelta(days=10), due_before=now),
        "combined": TaskFilter(completed=False, priority=Priority.MEDIUM, tag="work"),
    }
    sorts = [f"{d}{s}" for s in SORTABLE for d in ("", "-")]
    queries: dict[str, tuple[str, list[Any]]] = {}
    for name, base in filters.items():
        for sort in sorts if name == "none" else ["-created_at", "priority"]:
            f = replace(base, sort=cast("SortKey", sort))
            page, count = list_statements(f)
            queries[f"page {name} sort={sort}"] = (page.text, page.args(f.params(user)))
        last = replace(base, offset=9900)
        page, count = list_statements(last)
        queries[f"last page {name}"] = (page.text, page.args(last.params(user)))
        queries[f"count {name}"] = (count.text, count.args(last.params(user)))
    for name, sql in (
        ("stats", STATS),
        ("complete all", SET_COMPLETED_ALL),
        ("clear completed", DELETE_COMPLETED),
    ):
        queries[name] = (sql.text, sql.args({"owner": user, "now": now, "completed": True}))
    return queries


def _scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


async def _seed_and_explain(url: str, prefix: str) -> tuple[dict[str, list[str]], int]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_SEED.format(user="$1::varchar", count=BIG_USER_TASKS), f"{prefix}big")
        await conn.execute(
            _SEED.format(user=f"'{prefix}other-' || (g % {OTHER_USERS})", count="$1::int"),
            OTHER_USERS * TASKS_PER_OTHER_USER,
        )
        await conn.execute("ANALYZE tasks")
        seq_scans: dict[str, list[str]] = {}
        for name, (sql, args) in _queries(f"{prefix}big").items():
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            bad = [
                n["Node Type"]
                for n in _scans(plan)
                if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "tasks"
            ]
            if bad:
                seq_scans[name] = bad
        high = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE user_id = $1 AND priority = 'high'", f"{prefix}big"
        )
        return seq_scans, int(high)
    except BaseException:
        await conn.execute("DELETE FROM tasks WHERE user_id LIKE $1", f"{prefix}%")
        raise
    finally:
        await conn.close()


async def _cleanup(url: str, prefix: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM tasks WHERE user_id LIKE $1", f"{prefix}%")
    finally:
        await conn.close()


def test_listing_queries_use_indexes_at_scale(database_url: str, api: ApiServer, tokens: Tokens) -> None:
    url = database_url.replace("postgresql+asyncpg://", "postgresql://")
    prefix = f"explain-{uuid.uuid4().hex[:8]}-"
    seq_scans, high = asyncio.run(_seed_and_explain(url, prefix))
    try:
        assert seq_scans == {}, f"sequential scans of tasks: {seq_scans}"

        big = f"{prefix}big"
        with httpx.Client(base_url=f"{api.url}/api/{big}", headers=tokens.headers(big), timeout=60) as c:
            params: dict[str, str | int] = {"priority": "high", "sort": "-due_at", "limit": 200}
            first = c.get("/tasks", params=params)
            assert first.status_code == 200, first.text
            assert first.headers["X-Total-Count"] == str(high)
            page = first.json()
            assert len(page) == 200
            assert {t["priority"] for t in page} == {"high"}
            due = [datetime.fromisoformat(t["due_at"]) for t in page]  # half have none: those come last
            assert due == sorted(due, reverse=True)
            last_target = links(first)["last"]
            last_offset = int(query_of(last_target)["offset"][0])
            assert last_offset == (high - 1) // 200 * 200
            last = c.get(f"{api.url}{last_target}")
            assert last.status_code == 200, last.text
            assert len(last.json()) == high - last_offset
            assert "next" not in links(last)
            assert last.json(), last_target
            assert {(t["priority"], t["due_at"]) for t in last.json()} == {("high", None)}
            assert not {t["id"] for t in last.json()} & {t["id"] for t in page}

            stats = c.get("/tasks/stats")
            assert stats.status_code == 200
            assert stats.json()["total"] == BIG_USER_TASKS
            everything = c.get("/tasks", params={"limit": 1, "offset": BIG_USER_TASKS - 1})
            assert everything.headers["X-Total-Count"] == str(BIG_USER_TASKS)
            assert len(everything.json()) == 1
    finally:
        asyncio.run(_cleanup(url, prefix))
