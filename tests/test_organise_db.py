"""Lists, subtasks and manual order, in the database itself: SQL straight to a migrated PostgreSQL.

The rules hold whoever writes (the API or SQL by hand), and under concurrent writes: the races are
staged with open transactions, and a second writer is seen waiting on the first's lock (in
``pg_locks``) before the first commits.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast
from uuid import UUID

import asyncpg
import msgspec
import pytest
from sqlalchemy import Table

from backend.data.ordering import REFUSALS, Refusal, move_statement, refusal
from backend.data.positions import MAX_KEY_LENGTH, key_between
from backend.events.messages import encode, register_event_resource
from backend.lists.models import TaskList
from backend.tasks.models import Task

TASK_COLUMNS = ("id", "user_id", "title", "list_id", "parent_id", "position", "version")
_tasks = cast("Table", Task.__table__)
_lists = cast("Table", TaskList.__table__)
MOVE_TASK = move_statement(_tasks, [_tasks.c[n] for n in TASK_COLUMNS], ("list_id", "parent_id"))
MOVE_LIST = move_statement(_lists, [_lists.c[n] for n in ("id", "name", "position", "version")])
# The API's INSERT names no position: the database puts the task last.
INSERT = (
    "INSERT INTO tasks (id, user_id, title, list_id, parent_id, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, now(), now()) RETURNING " + ", ".join(TASK_COLUMNS)
)
INSERT_LIST = (
    "INSERT INTO lists (id, user_id, name, created_at, updated_at) VALUES ($1, $2, $3, now(), now()) "
    "RETURNING id, name, position, version"
)


def dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 120))


@asynccontextmanager
async def connect(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn(database_url))
    try:
        yield conn
    finally:
        await conn.close()


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


async def task(
    conn: asyncpg.Connection, user: str, title: str, lst: UUID | None = None, parent: UUID | None = None
) -> Any:
    return await conn.fetchrow(INSERT, uuid.uuid4(), user, title, lst, parent)


async def new_list(conn: asyncpg.Connection, user: str, name: str = "L") -> Any:
    return await conn.fetchrow(INSERT_LIST, uuid.uuid4(), user, name)


def move_params(user: str, target: UUID, after: UUID | None, **group: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"owner": user, "target": target, "after": after, "versions": None}
    params["now"] = datetime.now(UTC)
    for name in ("list_id", "parent_id"):
        params[f"{name}_given"] = name in group
        params[name] = group.get(name)
    return params


async def move(conn: asyncpg.Connection, user: str, target: UUID, after: UUID | None, **group: Any) -> Any:
    params = move_params(user, target, after, **{k: v for k, v in group.items() if k != "versions"})
    params["versions"] = group.get("versions")
    return await conn.fetchrow(MOVE_TASK.text, *MOVE_TASK.args(params))


async def refused(call: Awaitable[Any]) -> Refusal:
    with pytest.raises(asyncpg.PostgresError) as caught:
        await call
    answer = refusal(caught.value)
    assert answer is not None, caught.value
    return answer


async def order(
    conn: asyncpg.Connection, user: str, lst: UUID | None = None, parent: UUID | None = None
) -> list[str]:
    rows = await conn.fetch(
        "SELECT title FROM tasks WHERE user_id = $1 AND list_id IS NOT DISTINCT FROM $2 "
        "AND parent_id IS NOT DISTINCT FROM $3 ORDER BY position, id",
        user,
        lst,
        parent,
    )
    return [r[0] for r in rows]


async def events(conn: asyncpg.Connection, user: str, after: int = 0) -> list[tuple[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, type, data::text FROM task_events WHERE user_id = $1 AND id > $2 ORDER BY id", user, after
    )
    return [(r[1], json.loads(r[2])) for r in rows]


async def last_event(conn: asyncpg.Connection, user: str) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM task_events WHERE user_id = $1", user))


async def waits_for_lock(observer: asyncpg.Connection, pid: int) -> None:
    """Returns once backend ``pid`` waits for a lock that another transaction holds."""
    async with asyncio.timeout(30):
        while not await observer.fetchval(  # noqa: ASYNC110 - a poll of pg_locks: no event to await
            "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND NOT granted)", pid
        ):
            await asyncio.sleep(0.01)


# ----- placement on insert ------------------------------------------------------------------------------


def test_inserts_without_a_position_go_last_in_their_group(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            assert [(await task(conn, user, t))["position"] for t in "abc"] == ["a0", "a1", "a2"]
            lst = await new_list(conn, user)
            assert lst["position"] == "a0"
            assert (await new_list(conn, user))["position"] == "a1"
            assert (await task(conn, user, "in list", lst["id"]))["position"] == "a0"
            # Another user's groups are their own.
            assert (await task(conn, new_user(), "x"))["position"] == "a0"
            # A statement inserting several rows: each goes after the one before.
            await conn.execute(
                "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                "SELECT gen_random_uuid(), $1, 'bulk ' || g, now(), now() FROM generate_series(1, 3) g",
                user,
            )
            assert await order(conn, user) == ["a", "b", "c", "bulk 1", "bulk 2", "bulk 3"]

    run(main)


def test_subtasks_are_one_level_deep_in_their_parents_list_and_of_the_same_owner(database_url: str) -> None:
    async def main() -> None:
        user, other = new_user(), new_user()
        async with connect(database_url) as conn:
            lst = await new_list(conn, user)
            parent = await task(conn, user, "parent", lst["id"])
            sub = await task(conn, user, "sub", None, parent["id"])
            assert (sub["list_id"], sub["parent_id"], sub["position"]) == (lst["id"], parent["id"], "a0")
            top = await task(conn, user, "top")
            foreign_list = await new_list(conn, other)
            foreign_task = await task(conn, other, "theirs")

            cases: list[tuple[Awaitable[Any], Refusal]] = [
                (task(conn, user, "x", None, sub["id"]), REFUSALS["LPP02"]),
                (task(conn, user, "x", None, foreign_task["id"]), REFUSALS["LPP01"]),
                (task(conn, user, "x", None, uuid.uuid4()), REFUSALS["LPP01"]),
                (task(conn, user, "x", foreign_list["id"]), REFUSALS["LPL01"]),
                (task(conn, user, "x", uuid.uuid4()), REFUSALS["LPL01"]),
                (task(conn, user, "x", (await new_list(conn, user))["id"], parent["id"]), REFUSALS["LPL02"]),
                (conn.execute("UPDATE tasks SET parent_id = id WHERE id = $1", top["id"]), REFUSALS["LPP01"]),
                (
                    conn.execute("UPDATE tasks SET parent_id = $2 WHERE id = $1", parent["id"], top["id"]),
                    REFUSALS["LPP03"],
                ),
                (conn.execute("UPDATE tasks SET list_id = NULL WHERE id = $1", sub["id"]), REFUSALS["LPL02"]),
            ]
            for call, expected in cases:
                assert await refused(call) == expected
            assert {(r.status, r.field) for _, r in cases} == {(400, "parent_id"), (400, "list_id")}
            # Nothing changed.
            assert await order(conn, user, lst["id"]) == ["parent"]
            assert await order(conn, user, lst["id"], parent["id"]) == ["sub"]

            # Re-parented without a list: into the parent's list, last among its subtasks.
            moved = await conn.fetchrow(
                "UPDATE tasks SET parent_id = $2, version = version + 1 WHERE id = $1 "
                "RETURNING list_id, position",
                top["id"],
                parent["id"],
            )
            assert (moved["list_id"], moved["position"]) == (lst["id"], "a1")

    run(main)


# ----- cascades and the events they send ----------------------------------------------------------------


def test_a_parent_changing_lists_carries_its_subtasks_each_with_an_event(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            lst = await new_list(conn, user)
            parent = await task(conn, user, "parent")
            for i in range(3):
                await task(conn, user, f"sub {i}", None, parent["id"])
            mark = await last_event(conn, user)
            await conn.execute(
                "UPDATE tasks SET list_id = $2, version = version + 1 WHERE id = $1", parent["id"], lst["id"]
            )
            rows = await conn.fetch(
                "SELECT title, list_id, version, position FROM tasks WHERE user_id = $1 ORDER BY title", user
            )
            assert [(r[0], r[1], r[2]) for r in rows] == [
                ("parent", lst["id"], 2),
                ("sub 0", lst["id"], 2),
                ("sub 1", lst["id"], 2),
                ("sub 2", lst["id"], 2),
            ]
            assert [r[3] for r in rows[1:]] == ["a0", "a1", "a2"]  # their own order is kept
            sent = await events(conn, user, mark)
            assert sorted((t, d["title"], d["version"]) for t, d in sent) == [
                ("task.updated", "parent", 2),
                ("task.updated", "sub 0", 2),
                ("task.updated", "sub 1", 2),
                ("task.updated", "sub 2", 2),
            ]

    run(main)


def test_deleting_a_parent_or_a_list_deletes_what_it_holds_with_the_contracts_events(
    database_url: str,
) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            parent = await task(conn, user, "parent")
            subs = [await task(conn, user, f"sub {i}", None, parent["id"]) for i in range(2)]
            await conn.execute("UPDATE tasks SET completed = true WHERE parent_id = $1", parent["id"])
            mark = await last_event(conn, user)
            assert await conn.execute("DELETE FROM tasks WHERE id = $1", parent["id"]) == "DELETE 1"
            assert await conn.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user) == 0
            # One task.deleted each (completed subtasks are no "clear completed").
            assert sorted((t, d["id"]) for t, d in await events(conn, user, mark)) == sorted(
                ("task.deleted", str(t["id"])) for t in [parent, *subs]
            )

            lst = await new_list(conn, user)
            kept = await task(conn, user, "inbox")
            in_list = await task(conn, user, "p", lst["id"])
            for i in range(2):
                await task(conn, user, f"s{i}", None, in_list["id"])
            await task(conn, user, "q", lst["id"])
            mark = await last_event(conn, user)
            assert await conn.execute("DELETE FROM lists WHERE id = $1", lst["id"]) == "DELETE 1"
            assert [r[0] for r in await conn.fetch("SELECT id FROM tasks WHERE user_id = $1", user)] == [
                kept["id"]
            ]
            assert sorted(await events(conn, user, mark), key=lambda e: e[0]) == [
                ("list.deleted", {"id": str(lst["id"]), "version": 1}),
                ("tasks.changed", {"action": "list-deleted", "count": 4}),
            ]

    run(main)


def test_list_rows_are_announced_and_encoded_with_the_registered_struct(database_url: str) -> None:
    class ListRead(msgspec.Struct):
        id: UUID
        name: str
        position: str
        updated_at: datetime
        version: int

    register_event_resource("list", ListRead)

    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            await conn.execute(
                "SET TimeZone = 'Asia/Kolkata'"
            )  # the API answers in UTC whatever the writer used
            a = await new_list(conn, user, "A")
            b = await new_list(conn, user, "B")
            await conn.fetchrow(MOVE_LIST.text, *MOVE_LIST.args(move_params(user, b["id"], None)))
            await conn.execute("DELETE FROM lists WHERE id = $1", a["id"])
            rows = await conn.fetch(
                "SELECT id, type, data::text FROM task_events WHERE user_id = $1 ORDER BY id", user
            )
        messages = [encode(r[0], r[1], r[2]) for r in rows]
        bodies = [msgspec.json.decode(m.frame.split(b"data: ")[1]) for m in messages if m is not None]
        assert [b["type"] for b in bodies] == ["list.created", "list.created", "list.updated", "list.deleted"]
        assert bodies[2]["list"]["name"] == "B"
        assert bodies[2]["list"]["version"] == 2
        assert bodies[2]["list"]["updated_at"].endswith("Z")
        assert bodies[2]["list"]["position"] < "a0"
        assert bodies[3] == {"type": "list.deleted", "id": str(a["id"]), "version": 1}

    run(main)


# ----- moves --------------------------------------------------------------------------------------------


def test_a_move_writes_one_row_and_refuses_what_the_contract_refuses(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            a, b, c = [await task(conn, user, t) for t in "abc"]
            mark = await last_event(conn, user)
            moved = await move(conn, user, c["id"], a["id"])
            assert (moved["title"], moved["version"]) == ("c", 2)
            assert "a0" < moved["position"] < "a1"
            assert await order(conn, user) == ["a", "c", "b"]
            assert [(t, d["title"]) for t, d in await events(conn, user, mark)] == [("task.updated", "c")]
            # Where it already is: nothing changes, not even the version.
            assert (await move(conn, user, c["id"], a["id"]))["version"] == 2
            assert (await move(conn, user, a["id"], None))["version"] == 1
            assert len(await events(conn, user, mark)) == 1
            assert (await move(conn, user, a["id"], b["id"]))["position"] > b["position"]
            assert await order(conn, user) == ["c", "b", "a"]

            lst = await new_list(conn, user)
            stranger = await task(conn, new_user(), "theirs")
            assert await refused(move(conn, user, a["id"], a["id"])) == REFUSALS["LPA01"]
            assert await refused(move(conn, user, a["id"], stranger["id"])) == REFUSALS["LPA01"]
            assert await refused(move(conn, user, a["id"], b["id"], list_id=lst["id"])) == REFUSALS["LPA01"]
            assert await refused(move(conn, user, stranger["id"], None)) == REFUSALS["LP404"]
            assert await refused(move(conn, user, a["id"], None, versions=[1])) == REFUSALS["LP412"]
            assert await refused(move(conn, user, a["id"], None, list_id=uuid.uuid4())) == REFUSALS["LPL01"]
            assert await refused(move(conn, user, a["id"], None, parent_id=a["id"])) == REFUSALS["LPP01"]

            # Into a list, as a subtask, and back out.
            assert (await move(conn, user, b["id"], None, list_id=lst["id"], versions=[1, 2]))[
                "list_id"
            ] == lst["id"]
            sub = await move(conn, user, a["id"], None, parent_id=b["id"])
            assert (sub["list_id"], sub["parent_id"]) == (lst["id"], b["id"])
            assert await refused(move(conn, user, a["id"], None, list_id=None)) == REFUSALS["LPL02"]
            out = await move(conn, user, a["id"], c["id"], parent_id=None, list_id=None)
            assert (out["list_id"], out["parent_id"]) == (None, None)
            assert await order(conn, user) == ["c", "a"]

    run(main)


def test_300_moves_into_one_gap_then_a_renumber_when_a_key_would_pass_255(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            first, last = await task(conn, user, "first"), await task(conn, user, "last")
            movers = [await task(conn, user, f"m{i:03}") for i in range(300)]
            model = ["first", "last"]
            for m in movers:  # each right after "first": always into the gap the previous one made
                moved = await move(conn, user, m["id"], first["id"])
                model.insert(1, m["title"])
                assert len(moved["position"]) <= MAX_KEY_LENGTH
            assert await order(conn, user) == model
            keys = [r[0] for r in await conn.fetch("SELECT position FROM tasks WHERE user_id = $1", user)]
            assert len(set(keys)) == 302
            assert 40 < max(map(len, keys)) < MAX_KEY_LENGTH

            # Neighbours whose keys leave no room within 255 characters: the group is renumbered.
            tight = "a0" + "0" * 252 + "1"
            await conn.execute("UPDATE tasks SET position = $2 WHERE id = $1", last["id"], tight)
            await conn.execute("UPDATE tasks SET position = 'a0' WHERE id = $1", first["id"])
            assert len(key_between("a0", tight)) > MAX_KEY_LENGTH
            before = {
                r[0]: r[1] for r in await conn.fetch("SELECT id, version FROM tasks WHERE user_id = $1", user)
            }
            mark = await last_event(conn, user)
            moved = await move(conn, user, movers[0]["id"], first["id"])
            rows = await conn.fetch(
                "SELECT title, position, id, version FROM tasks WHERE user_id = $1 ORDER BY position", user
            )
            assert [r[0] for r in rows[:3]] == ["first", "m000", "last"]
            assert max(len(r[1]) for r in rows) <= 3
            assert all(r[3] == before[r[2]] + 1 for r in rows)
            assert len(await events(conn, user, mark)) == 302
            assert moved["position"] == rows[1][1]

    run(main)


def test_a_seeded_random_sequence_of_moves_matches_a_model(database_url: str) -> None:
    rnd = random.Random(20261207)

    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            lists = [None, (await new_list(conn, user, "A"))["id"], (await new_list(conn, user, "B"))["id"]]
            model: dict[UUID | None, list[UUID]] = {lst: [] for lst in lists}
            titles: dict[UUID, str] = {}
            for i in range(24):
                lst = lists[i % 3]
                row = await task(conn, user, f"t{i}", lst)
                model[lst].append(row["id"])
                titles[row["id"]] = row["title"]
            for _ in range(250):
                target = rnd.choice(list(titles))
                source = next(lst for lst, ids in model.items() if target in ids)
                dest = rnd.choice(lists)
                siblings = [t for t in model[dest] if t != target]
                after = rnd.choice([None, *siblings])
                await move(conn, user, target, after, list_id=dest)
                model[source].remove(target)
                model[dest].insert(0 if after is None else siblings.index(after) + 1, target)
            for lst in lists:
                assert await order(conn, user, lst) == [titles[t] for t in model[lst]]

    run(main)


# ----- races ----------------------------------------------------------------------------------------------


def test_concurrent_moves_in_one_group_lose_no_row_and_share_no_key(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with connect(database_url) as conn:
            ids = [(await task(conn, user, f"t{i}"))["id"] for i in range(12)]
        rnd = random.Random(7)

        async def mover(seed: int) -> int:
            moved = 0
            r = random.Random(seed)
            async with connect(database_url) as c:
                for _ in range(25):
                    target = r.choice(ids)
                    await move(c, user, target, r.choice([None, *(i for i in ids if i != target)]))
                    moved += 1
            return moved

        done = await asyncio.gather(*(mover(rnd.randrange(10**6)) for _ in range(6)))
        assert sum(done) == 150
        async with connect(database_url) as conn:
            rows = await conn.fetch("SELECT id, position FROM tasks WHERE user_id = $1", user)
        assert sorted(r[0] for r in rows) == sorted(ids)
        assert len({r[1] for r in rows}) == 12

    run(main)


def test_concurrent_creates_in_one_group_get_distinct_keys(database_url: str) -> None:
    async def main() -> None:
        user = new_user()

        async def creator(n: int) -> None:
            async with connect(database_url) as c:
                for i in range(15):
                    await task(c, user, f"{n}-{i}")

        await asyncio.gather(*(creator(n) for n in range(6)))
        async with connect(database_url) as conn:
            keys = [r[0] for r in await conn.fetch("SELECT position FROM tasks WHERE user_id = $1", user)]
        assert len(keys) == len(set(keys)) == 90

    run(main)


@asynccontextmanager
async def staged(
    database_url: str,
) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection, asyncpg.Connection]]:
    """Two writers and an observer; the first writer's statements run in an open transaction."""
    async with (
        connect(database_url) as first,
        connect(database_url) as second,
        connect(database_url) as observer,
    ):
        yield first, second, observer


async def race(
    first: asyncpg.Connection,
    second: asyncpg.Connection,
    observer: asyncpg.Connection,
    first_write: Callable[[], Awaitable[Any]],
    second_write: Callable[[], Awaitable[Any]],
) -> tuple[Any, Any]:
    """``first_write`` in an open transaction, then ``second_write`` until it waits on its locks,
    then the first commits. Each result, or the error it raised."""
    tx = first.transaction()
    await tx.start()
    one: Any
    try:
        one = await first_write()
    except asyncpg.PostgresError as exc:
        one = exc
    pending = asyncio.ensure_future(second_write())
    waiting = asyncio.ensure_future(waits_for_lock(observer, second.get_server_pid()))
    done, _ = await asyncio.wait([pending, waiting], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    assert pending not in done, "the second write did not wait for the first"
    await (tx.rollback() if isinstance(one, Exception) else tx.commit())
    try:
        two = await pending
    except asyncpg.PostgresError as exc:
        two = exc
    return one, two


async def invariants(conn: asyncpg.Connection, user: str) -> None:
    """No subtask outside its parent's list, none of a subtask, no orphan, no shared key."""
    bad = await conn.fetch(
        "SELECT s.title FROM tasks s LEFT JOIN tasks p ON p.id = s.parent_id "
        "WHERE s.user_id = $1 AND s.parent_id IS NOT NULL "
        "AND (p.id IS NULL OR p.list_id IS DISTINCT FROM s.list_id OR p.parent_id IS NOT NULL)",
        user,
    )
    assert bad == []
    orphans = await conn.fetch(
        "SELECT t.title FROM tasks t WHERE t.user_id = $1 AND t.list_id IS NOT NULL "
        "AND NOT EXISTS (SELECT FROM lists l WHERE l.id = t.list_id)",
        user,
    )
    assert orphans == []


def test_reparenting_while_the_parent_changes_lists_leaves_the_subtask_with_its_parent(
    database_url: str,
) -> None:
    async def main() -> None:
        user = new_user()
        async with staged(database_url) as (first, second, observer):
            for reparent_first in (True, False):
                lst = await new_list(first, user)
                parent, child = await task(first, user, "p"), await task(first, user, "c")

                def reparent(
                    c: asyncpg.Connection, child: Any = child, parent: Any = parent
                ) -> Awaitable[Any]:
                    return move(c, user, child["id"], None, parent_id=parent["id"])

                def relist(c: asyncpg.Connection, parent: Any = parent, lst: Any = lst) -> Awaitable[Any]:
                    return move(c, user, parent["id"], None, list_id=lst["id"])

                one_write, two_write = (reparent, relist) if reparent_first else (relist, reparent)
                one, two = await race(
                    first, second, observer, partial(one_write, first), partial(two_write, second)
                )
                assert not isinstance(one, Exception), one
                assert not isinstance(two, Exception), two
                row = await first.fetchrow("SELECT list_id, parent_id FROM tasks WHERE id = $1", child["id"])
                assert (row[0], row[1]) == (lst["id"], parent["id"])
                await invariants(first, user)

    run(main)


def test_deleting_a_parent_while_a_subtask_is_added_leaves_no_orphan(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with staged(database_url) as (first, second, observer):
            parent = await task(first, user, "p")
            one, two = await race(
                first,
                second,
                observer,
                lambda: first.execute("DELETE FROM tasks WHERE id = $1", parent["id"]),
                lambda: task(second, user, "late sub", None, parent["id"]),
            )
            assert one == "DELETE 1"
            assert refusal(two) == REFUSALS["LPP01"]
            # The other way round: the subtask first, then the delete takes it along.
            parent = await task(first, user, "p2")
            one, two = await race(
                first,
                second,
                observer,
                lambda: task(first, user, "sub", None, parent["id"]),
                lambda: second.execute("DELETE FROM tasks WHERE id = $1", parent["id"]),
            )
            assert two == "DELETE 1"
            assert await first.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user) == 0
            await invariants(first, user)

    run(main)


def test_deleting_a_list_while_a_task_is_created_in_it_leaves_no_orphan(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with staged(database_url) as (first, second, observer):
            lst = await new_list(first, user)
            _, two = await race(
                first,
                second,
                observer,
                lambda: first.execute("DELETE FROM lists WHERE id = $1", lst["id"]),
                lambda: task(second, user, "late", lst["id"]),
            )
            assert refusal(two) == REFUSALS["LPL01"]
            lst = await new_list(first, user)
            _, two = await race(
                first,
                second,
                observer,
                lambda: task(first, user, "early", lst["id"]),
                lambda: second.execute("DELETE FROM lists WHERE id = $1", lst["id"]),
            )
            assert two == "DELETE 1"
            assert await first.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user) == 0
            await invariants(first, user)

    run(main)


def test_two_tasks_becoming_each_others_parent_cannot_both_succeed(database_url: str) -> None:
    async def main() -> None:
        user = new_user()
        async with staged(database_url) as (first, second, observer):
            a, b = await task(first, user, "a"), await task(first, user, "b")
            tx = first.transaction()
            await tx.start()
            await move(first, user, a["id"], None, parent_id=b["id"])
            pending = asyncio.ensure_future(move(second, user, b["id"], None, parent_id=a["id"]))
            await waits_for_lock(observer, second.get_server_pid())
            await tx.commit()
            with pytest.raises(asyncpg.PostgresError) as caught:
                await pending
            # Refused as a rule (b is now a's parent: it has a subtask), or as the deadlock PostgreSQL
            # breaks: either way never a cycle.
            assert (
                refusal(caught.value) in (REFUSALS["LPP02"], REFUSALS["LPP03"])
                or caught.value.sqlstate == "40P01"
            )
            await invariants(first, user)

    run(main)
