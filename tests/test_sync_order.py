"""``/sync`` under the database's own concurrency: a big snapshot in pages, and a change held open
by a transaction is never overtaken by the reader's cursor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import httpx
import pytest

from tests.support import ApiServer, Tokens
from tests.test_sync import sync


@asynccontextmanager
async def connect(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        yield connection
    finally:
        await connection.close()


def test_a_snapshot_of_10000_tasks_comes_in_pages_each_once(
    client: httpx.Client, user: str, database_url: str
) -> None:
    async def seed() -> None:
        async with connect(database_url) as connection:
            await connection.execute(
                "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                "SELECT gen_random_uuid(), $1, 't' || i, now(), now() FROM generate_series(1, 10000) i",
                user,
            )

    asyncio.run(seed())
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        response = client.get(
            "/sync", params={"limit": 1000, **({} if cursor is None else {"cursor": cursor})}
        )
        assert response.status_code == 200
        body = response.json()
        assert len(body["tasks"]) <= 1000
        seen += [t["id"] for t in body["tasks"]]
        pages += 1
        cursor = body["cursor"]
        if not body["more"]:
            break
    assert pages in (10, 11)
    assert len(seen) == len(set(seen)) == 10000


async def _held_change_comes_after(api: ApiServer, tokens: Tokens, user: str, database_url: str) -> None:
    async with httpx.AsyncClient(base_url=f"{api.url}/api/{user}", headers=tokens.headers(user)) as client:
        first = (await client.post("/tasks", json={"title": "first"})).json()
        cursor = (await client.get("/sync")).json()["cursor"]
        async with connect(database_url) as holder, connect(database_url) as watcher:
            # A writer whose transaction has drawn its change number and has not committed yet.
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute(
                "UPDATE tasks SET title = 'held', version = version + 1 WHERE id = $1", first["id"]
            )
            # Another write of the same user, through the API: it must wait for the first to commit.
            second = asyncio.create_task(client.post("/tasks", json={"title": "second"}))
            while not await watcher.fetchval(  # noqa: ASYNC110 - a poll of pg_locks: no event to await
                "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 13))",
                user,
            ):
                await asyncio.sleep(0.01)
            # The reader moves on meanwhile: it sees neither change, and its cursor does not pass them.
            body = (await client.get("/sync", params={"cursor": cursor})).json()
            assert body["tasks"] == []
            cursor = body["cursor"]
            await transaction.commit()
            made = (await second).json()
        body = (await client.get("/sync", params={"cursor": cursor})).json()
        assert sorted((t["title"], t["version"]) for t in body["tasks"]) == [("held", 2), ("second", 1)]
        assert made["title"] == "second"


def test_a_change_held_open_by_a_transaction_comes_after_it_commits(
    api: ApiServer, tokens: Tokens, user: str, database_url: str
) -> None:
    asyncio.run(_held_change_comes_after(api, tokens, user, database_url))


def test_the_changes_of_one_big_transaction_come_in_pages_each_once(
    client: httpx.Client, user: str, database_url: str
) -> None:
    """A cursor that stops inside a transaction of 1,200 rows resumes after its last id there."""
    cursor = client.get("/sync").json()["cursor"]

    async def import_then_prune() -> tuple[set[str], set[str]]:
        async with connect(database_url) as connection:
            await connection.execute(
                "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                "SELECT gen_random_uuid(), $1, 't' || i, now(), now() FROM generate_series(1, 1200) i",
                user,
            )
            ids = [str(r[0]) for r in await connection.fetch("SELECT id FROM tasks WHERE user_id = $1", user)]
            async with connection.transaction():
                await connection.execute("DELETE FROM tasks WHERE id = ANY($1::uuid[])", ids[:300])
                touched = ids[300:305]
                await connection.execute("UPDATE tasks SET title = 'x' WHERE id = ANY($1::uuid[])", touched)
            return set(ids[300:]), set(ids[:300])

    kept, deleted = asyncio.run(import_then_prune())
    tasks: list[str] = []
    gone: list[str] = []
    pages = 0
    while True:
        body = client.get("/sync", params={"cursor": cursor, "limit": 500}).json()
        assert len(body["tasks"]) + len(body["deleted_tasks"]) <= 500
        tasks += [t["id"] for t in body["tasks"]]
        gone += [d["id"] for d in body["deleted_tasks"]]
        pages += 1
        cursor = body["cursor"]
        if not body["more"]:
            break
    assert len(tasks) == len(set(tasks)) == 900
    assert set(tasks) == kept
    assert len(gone) == len(set(gone)) <= 300
    assert set(gone) <= deleted
    assert pages == 3


_INSERT = (
    "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
    "VALUES (gen_random_uuid(), $1, $2, now(), now())"
)


class _RolledBack(Exception):
    pass


@pytest.mark.parametrize("after_another_user", [False, True], ids=["alone", "after-another-users-write"])
def test_a_change_after_a_rolled_back_savepoint_still_comes(
    client: httpx.Client, user: str, database_url: str, after_another_user: bool
) -> None:
    """The savepoint took back the number its statement drew: the next statement draws one again (also
    when the transaction drew one for another user before the savepoint)."""
    cursor = sync(client)["cursor"]

    async def write() -> None:
        async with connect(database_url) as connection, connection.transaction():
            if after_another_user:
                await connection.execute(_INSERT, user + "-other", "theirs")
            try:
                async with connection.transaction():
                    await connection.execute(_INSERT, user, "taken back")
                    raise _RolledBack
            except _RolledBack:
                pass
            await connection.execute(_INSERT, user, "kept")

    asyncio.run(write())
    assert [t["title"] for t in sync(client, cursor=cursor)["tasks"]] == ["kept"]


@contextmanager
def _another_user(api_url: str, tokens: Tokens, user: str) -> Iterator[tuple[str, httpx.Client]]:
    other = user + "-other"
    with httpx.Client(base_url=f"{api_url}/api/{other}", headers=tokens.headers(other)) as theirs:
        yield other, theirs


def test_a_transaction_that_writes_for_two_users_brings_each_all_of_theirs(
    client: httpx.Client, api_url: str, tokens: Tokens, user: str, database_url: str
) -> None:
    with _another_user(api_url, tokens, user) as (other, theirs):
        mine_before, theirs_before = sync(client)["cursor"], sync(theirs)["cursor"]

        async def write() -> None:
            async with connect(database_url) as connection, connection.transaction():
                for owner, title in ((user, "a1"), (other, "b1"), (user, "a2"), (other, "b2")):
                    await connection.execute(_INSERT, owner, title)
                await connection.execute(
                    "UPDATE tasks SET title = 'a1!' WHERE user_id = $1 AND title = 'a1'", user
                )

        asyncio.run(write())
        assert sorted(t["title"] for t in sync(client, cursor=mine_before)["tasks"]) == ["a1!", "a2"]
        assert sorted(t["title"] for t in sync(theirs, cursor=theirs_before)["tasks"]) == ["b1", "b2"]


def test_a_row_given_to_another_user_is_a_deletion_for_its_previous_owner(
    client: httpx.Client, api_url: str, tokens: Tokens, user: str, database_url: str
) -> None:
    """SQL run by hand may move a row to another owner: the API never does, sync still tells both."""
    given = client.post("/tasks", json={"title": "given"}).json()
    with _another_user(api_url, tokens, user) as (other, theirs):
        mine_before, theirs_before = sync(client)["cursor"], sync(theirs)["cursor"]

        async def give() -> None:
            async with connect(database_url) as connection:
                await connection.execute("UPDATE tasks SET user_id = $1 WHERE id = $2", other, given["id"])

        asyncio.run(give())
        mine = sync(client, cursor=mine_before)
        assert mine["tasks"] == []
        assert mine["deleted_tasks"] == [{"id": given["id"], "version": given["version"]}]
        received = sync(theirs, cursor=theirs_before)
        assert [t["id"] for t in received["tasks"]] == [given["id"]]
        assert received["deleted_tasks"] == []


def test_a_row_given_away_and_back_in_one_transaction_is_no_deletion(
    client: httpx.Client, user: str, database_url: str
) -> None:
    kept = client.post("/tasks", json={"title": "kept"}).json()
    cursor = sync(client)["cursor"]

    async def away_and_back() -> None:
        async with connect(database_url) as connection, connection.transaction():
            for owner in (user + "-other", user):
                await connection.execute("UPDATE tasks SET user_id = $1 WHERE id = $2", owner, kept["id"])

    asyncio.run(away_and_back())
    body = sync(client, cursor=cursor)
    assert [t["id"] for t in body["tasks"]] == [kept["id"]]
    assert body["deleted_tasks"] == []
