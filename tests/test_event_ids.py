"""Live-update ids count the caller's own changes only (migration 0012), end to end on the real server:
another user's writes never move them, concurrent writers of one user get consecutive ids in commit
order, ``Last-Event-ID`` replays exactly the rest, and ids from before the numbering, or whose events
were purged, get ``resync``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import new_database
from tests.sse import Event, Stream, open_stream
from tests.support import SECRET, ApiServer, Tokens, api_server, run_cli
from tests.test_events import create, dsn, expect, run


def new_user(prefix: str = "ids") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def created(stream: Stream, count: int) -> list[int]:
    """The ids of the next ``count`` events, each a ``task.created``."""
    ids = [(await expect(stream, "task.created")).id for _ in range(count)]
    return [i for i in ids if i is not None]


def test_a_users_ids_do_not_move_when_another_user_writes(api: ApiServer, tokens: Tokens) -> None:
    a, b = new_user("a"), new_user("b")
    ha, hb = tokens.headers(a), tokens.headers(b)

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, a, ha) as theirs, open_stream(c, b, hb) as mine:
            await create(c, b, hb)
            first = (await expect(mine, "task.created")).id
            assert first == 1  # a new user's first change (on a database numbered since 0012)
            # Five changes of A, seen committed on A's stream, between two of B's.
            for _ in range(5):
                await create(c, a, ha)
            a_ids = await created(theirs, 5)
            await create(c, b, hb)
            assert (await expect(mine, "task.created")).id == 2
            # Concurrent writes of both, interleaved.
            calls = [create(c, user, h) for _ in range(10) for user, h in ((a, ha), (b, hb))]
            await asyncio.gather(*calls)
            assert await created(mine, 10) == list(range(3, 13))
            a_ids += await created(theirs, 10)
            assert a_ids == list(range(1, 16))

    run(api, scenario)


async def _by_sql(database_url: str, user: str) -> None:
    """Two connections writing ``user``'s tasks at once: transactions of two statements, and statements
    that insert three tasks."""

    async def writer() -> None:
        conn = await asyncpg.connect(dsn(database_url))
        try:
            for _ in range(3):
                async with conn.transaction():
                    for _ in range(2):
                        await conn.execute(
                            "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                            "VALUES (gen_random_uuid(), $1, 'by sql', now(), now())",
                            user,
                        )
                await conn.execute(
                    "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                    "SELECT gen_random_uuid(), $1, 'by sql ' || i, now(), now() FROM generate_series(1, 3) i",
                    user,
                )
        finally:
            await conn.close()

    await asyncio.gather(writer(), writer())


def test_concurrent_writers_get_consecutive_ids_and_any_replay_gives_exactly_the_rest(
    api: ApiServer, tokens: Tokens, user: str, database_url: str
) -> None:
    h = tokens.headers(user)
    toggles, writers = 8, 4

    async def writer(c: httpx.AsyncClient) -> None:
        task = await create(c, user, h)
        for _ in range(toggles):
            r = await c.patch(f"/api/{user}/tasks/{task['id']}/complete", headers=h)
            assert r.status_code == 200, r.text

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            await asyncio.gather(*(writer(c) for _ in range(writers)), _by_sql(database_url, user))
            count = writers * (1 + toggles) + 2 * 3 * (2 + 3)
            seen = [await stream.next() for _ in range(count)]
            ids = [e.id for e in seen]
            assert ids == list(range(1, count + 1)), ids
            # In commit order: each task's versions arrive in order.
            versions: dict[str, list[int]] = {}
            for e in seen:
                versions.setdefault(e.data["task"]["id"], []).append(e.data["task"]["version"])
            assert all(v == sorted(v) for v in versions.values()), versions
            for after in (0, 1, count // 3, count - 1, count):
                await replay_gives_the_rest(c, stream, seen, after)

    async def replay_gives_the_rest(
        c: httpx.AsyncClient, live: Stream, seen: list[Event], after: int
    ) -> None:
        async with open_stream(c, user, {**h, "Last-Event-ID": str(after)}) as again:
            # A change made while the replay is read comes after it, once.
            marker = await create(c, user, h, title=f"after {after}")
            seen.append(await expect(live, "task.created"))
            got: list[Event] = []
            while not got or got[-1].data["task"]["id"] != marker["id"]:
                got.append(await again.next())
        rest = [(e.id, e.data) for e in seen if e.id is not None and e.id > after]
        assert [(e.id, e.data) for e in got] == rest

    run(api, scenario)


@dataclass
class Before:
    """A database whose tasks were written before migration 0012, served by the API."""

    server: ApiServer
    database_url: str
    user: str
    old_ids: list[int]  # ``user``'s event ids then (global ids, the last of them the last of all)


@pytest.fixture(scope="module")
def before(admin_url: str, api_env: dict[str, str]) -> Iterator[Before]:
    url = new_database(admin_url)
    env = {"DATABASE_URL": url, "JWT_SECRET": SECRET}
    run_cli("database", "upgrade", "0011", "--no-prompt", env=env)
    user, other = new_user("old"), new_user("other")
    old_ids = asyncio.run(_write_before(url, [user, other, user, other, user]))[user]
    run_cli("database", "upgrade", "--no-prompt", env=env)
    served = {**api_env, "DATABASE_URL": url}
    served.pop("DATABASE_LISTEN_URL", None)
    served.pop("DATABASE_POOL_MODE", None)
    with api_server(served) as server:
        yield Before(server, url, user, old_ids)


async def _write_before(url: str, owners: list[str]) -> dict[str, list[int]]:
    conn = await asyncpg.connect(dsn(url))
    try:
        for owner in owners:
            await conn.execute(
                "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                "VALUES (gen_random_uuid(), $1, 'before', now(), now())",
                owner,
            )
        ids: dict[str, list[int]] = {}
        for event_id, owner in await conn.fetch("SELECT id, user_id FROM task_events ORDER BY id"):
            ids.setdefault(owner, []).append(event_id)
        return ids
    finally:
        await conn.close()


def test_ids_from_before_the_numbering_get_resync_and_new_ids_start_above_them(
    before: Before, tokens: Tokens
) -> None:
    user, h = before.user, tokens.headers(before.user)
    newest_old = before.old_ids[-1]  # the user's last event then, and the last of all

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            await create(c, user, h)
            assert (await expect(stream, "task.created")).id == newest_old + 1
        made = 1
        # An older id: what followed it is not kept in the new numbering: resync, then live events.
        for old in before.old_ids[:-1]:
            async with open_stream(c, user, {**h, "Last-Event-ID": str(old)}) as stream:
                assert (await stream.next()).event == "resync"
                task = await create(c, user, h)
                made += 1
                got = await expect(stream, "task.created")
                assert (got.id, got.data["task"]["id"]) == (newest_old + made, task["id"])
        # The very last id handed out before: its client saw everything until then, and gets every new
        # event.
        async with open_stream(c, user, {**h, "Last-Event-ID": str(newest_old)}) as stream:
            ids = [(await expect(stream, "task.created")).id for _ in range(made)]
            assert ids == list(range(newest_old + 1, newest_old + 1 + made))

    run(before.server, scenario)


def test_a_replay_whose_events_were_purged_is_a_resync(before: Before, tokens: Tokens) -> None:
    user = new_user("purged")
    h = tokens.headers(user)

    async def purge_all(url: str) -> Any:
        conn = await asyncpg.connect(dsn(url))
        try:
            # What the listener runs every minute, here with nothing to keep.
            return await conn.fetchval("SELECT task_events_purge(interval '0 seconds')")
        finally:
            await conn.close()

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            for _ in range(3):
                await create(c, user, h)
            first = (await created(stream, 3))[0]
            assert await purge_all(before.database_url) > 0
            for _ in range(2):
                await create(c, user, h)
            last = (await created(stream, 2))[-1]
        assert last == first + 4
        # Events first+1 and first+2 are gone: resync, and live events after it.
        async with open_stream(c, user, {**h, "Last-Event-ID": str(first)}) as stream:
            assert (await stream.next()).event == "resync"
            task = await create(c, user, h)
            got = await expect(stream, "task.created")
            assert (got.id, got.data["task"]["id"]) == (last + 1, task["id"])
        # After the purged ones, all there: replayed.
        async with open_stream(c, user, {**h, "Last-Event-ID": str(first + 2)}) as stream:
            assert await created(stream, 3) == [first + 3, first + 4, last + 1]

    run(before.server, scenario)
