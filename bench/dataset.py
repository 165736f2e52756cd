"""The dataset: users, their tasks and the big user, loaded by COPY; counters and query plans."""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

USERS = 1000
TASKS_PER_USER = 50
BIG_TASKS = 10_000
PAGE = 50
LIST_USERS = 100  # users with lists (the `lists` case rotates over them)
LISTS_PER_USER = 20
SYNC_CHANGES = 10  # changes of the 10k-task user after the `sync` case's cursor
BIG_FILTER = "priority=high&sort=-due_at"
# Flags every Granian variant shares: HTTP/1 only, no websockets, the same backlog as uvicorn's.


def uuid7_at(ms: int, rng: random.Random) -> uuid.UUID:
    value = bytearray(ms.to_bytes(6, "big") + rng.randbytes(10))
    value[6] = 0x70 | (value[6] & 0x0F)
    value[8] = 0x80 | (value[8] & 0x3F)
    return uuid.UUID(bytes=bytes(value))


def user_ids(rng: random.Random) -> tuple[list[str], str]:
    """Better Auth-like ids: 32 random alphanumerics."""
    alphabet = string.ascii_letters + string.digits
    users = ["".join(rng.choices(alphabet, k=32)) for _ in range(USERS)]
    big = "big" + "".join(rng.choices(alphabet, k=29))
    return users, big


TAGS = ["home", "work", "errand", "urgent", "later", "family", "health", "money", "garden", "car"]
PRIORITIES = ["low", "medium", "high"]


def task_rows(user: str, count: int, rng: random.Random, now: datetime) -> Iterator[tuple[Any, ...]]:
    for n in range(count):
        created = now - timedelta(days=90) + timedelta(seconds=rng.uniform(0, 90 * 86400))
        completed = rng.random() < 0.3
        due = None if rng.random() < 0.4 else now + timedelta(hours=rng.uniform(-30 * 24, 60 * 24))
        yield (
            uuid7_at(int(created.timestamp() * 1000), rng),
            user,
            f"Task {n} of the benchmark: something to do",
            None if rng.random() < 0.5 else "A short description of what has to be done, and why.",
            completed,
            created + timedelta(hours=1) if completed else None,
            rng.choice(PRIORITIES),
            rng.sample(TAGS, rng.randint(0, 3)),
            due,
            1,
            created,
            created,
        )


COPY_COLUMNS = [
    "id", "user_id", "title", "description", "completed", "completed_at", "priority", "tags", "due_at",
    "version", "created_at", "updated_at",
]  # fmt: skip


def list_rows(users: list[str], rng: random.Random, now: datetime) -> Iterator[tuple[Any, ...]]:
    """LISTS_PER_USER lists each; the database's placement trigger gives their positions."""
    for user in users:
        for n in range(LISTS_PER_USER):
            created = now - timedelta(days=90) + timedelta(seconds=n)
            yield uuid7_at(int(created.timestamp() * 1000), rng), user, f"List {n}", created, created, 1


async def load_dataset(dsn: str, users: list[str], big: str) -> dict[str, Any]:
    rng = random.Random(5)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(0, len(users), 100):
            records = [r for u in users[i : i + 100] for r in task_rows(u, TASKS_PER_USER, rng, now)]
            await conn.copy_records_to_table("tasks", records=records, columns=COPY_COLUMNS)
        await conn.copy_records_to_table(
            "tasks", records=list(task_rows(big, BIG_TASKS, rng, now)), columns=COPY_COLUMNS
        )
        await conn.copy_records_to_table(
            "lists", records=list(list_rows(users[:LIST_USERS], rng, now)),
            columns=["id", "user_id", "name", "created_at", "updated_at", "version"],
        )  # fmt: skip
        await conn.execute("VACUUM ANALYZE tasks")
        await conn.execute("VACUUM ANALYZE lists")
        cursor = await sync_cursor_before_changes(conn, big)
        # Five task ids per user for the single-task cases.
        rows = await conn.fetch(
            "SELECT user_id, id FROM (SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY id) "
            "AS n FROM tasks WHERE user_id <> $1) t WHERE n <= 5 ORDER BY n, user_id",
            big,
        )
        big_high = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE user_id = $1 AND priority = 'high'", big
        )
        total = await conn.fetchval("SELECT count(*) FROM tasks")
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "task_ids": [(r["user_id"], str(r["id"])) for r in rows],
        "list_users": users[:LIST_USERS],
        "sync_cursor": cursor,
        "big_high": big_high,
        "total": total,
        "pg_version": pg_version,
    }


async def sync_cursor_before_changes(conn: asyncpg.Connection, big: str) -> str:
    """A ``/sync`` cursor of the 10k-task user followed by SYNC_CHANGES changes, each its own transaction.

    The cursor stands after one small change, as a client's does after catching up with a single edit
    (standing right after the 10,000-row load, every read would also walk that transaction's rows). The
    harness writes it with the API's own encoder: clients only ever get it from an answer."""
    from backend.data.changes import Since, encode

    ids = await conn.fetch(
        "SELECT id FROM tasks WHERE user_id = $1 ORDER BY id LIMIT $2", big, SYNC_CHANGES + 1
    )
    change = (
        "UPDATE tasks SET title = title || ' (changed)', version = version + 1, updated_at = now() "
        "WHERE user_id = $1 AND id = $2"
    )
    await conn.execute(change, big, ids[0]["id"])
    seq = await conn.fetchval("SELECT seq FROM sync_clock WHERE user_id = $1", big)
    for row in ids[1:]:
        await conn.execute(change, big, row["id"])
    return encode(Since(int(seq)))


async def delete_created(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.execute("DELETE FROM tasks WHERE title = 'wrk created task'")
        await conn.execute("VACUUM ANALYZE tasks")
        return int(status.split()[-1])
    finally:
        await conn.close()


# Change tracking (migrations 0009/0016/0017) per tracked table: its triggers.
_TRACKED = ("tasks", "lists")
_TRACKING_TRIGGERS = ("sync_after_insert", "sync_after_update", "sync_moved", "sync_after_delete")


async def set_change_tracking(dsn: str, *, on: bool) -> None:
    """Switch change tracking off (or back on): the `litestar-untracked` server's database."""
    conn = await asyncpg.connect(dsn)
    try:
        for table in _TRACKED:
            verb = "ENABLE" if on else "DISABLE"
            for trigger in _TRACKING_TRIGGERS:
                await conn.execute(f"ALTER TABLE {table} {verb} TRIGGER {table}_{trigger}")
    finally:
        await conn.close()


async def db_counters(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


async def explain_big(dsn: str, big: str, last: int) -> str:
    """EXPLAIN ANALYZE of the very statements the API runs for the 10k-user pages, as evidence."""
    from backend.tasks.filters import TaskFilter
    from backend.tasks.models import Priority
    from backend.tasks.repository import list_statements

    conn = await asyncpg.connect(dsn)
    out = ["## Query plans of the 10k-user pages (EXPLAIN ANALYZE, idle database, before the runs)", ""]
    try:
        small = await conn.fetchval("SELECT user_id FROM tasks WHERE user_id <> $1 LIMIT 1", big)
        cases = [
            ("first page (total in the same statement)", big, TaskFilter(priority=Priority.HIGH, sort="-due_at", limit=50)),
            ("last page", big, TaskFilter(priority=Priority.HIGH, sort="-due_at", limit=50, offset=last)),
            ("50-task user list, for comparison", small, TaskFilter(limit=50)),
        ]  # fmt: skip
        for label, user, f in cases:
            page, _ = list_statements(f)
            rows = await conn.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {page.text}", *page.args(f.params(user))
            )
            out += [f"{label}:", "```", *[r[0] for r in rows], "```", ""]
    finally:
        await conn.close()
    return "\n".join(out)
