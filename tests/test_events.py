"""Live updates (``GET /api/{user_id}/events``) against the real API server and PostgreSQL.

Each test opens real SSE streams with httpx, changes tasks through the API (or by SQL), and checks
what a browser's EventSource would receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from backend.events.stream import PING_EVERY_SECONDS
from backend.settings import ConfigError, load_settings
from tests.sse import Event, Stream, open_stream
from tests.support import SECRET, ApiServer, Tokens, api_server, run_cli

Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def run(api: ApiServer, scenario: Scenario) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            await scenario(client)

    asyncio.run(main())


def dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


async def create(
    client: httpx.AsyncClient, user: str, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    r = await client.post(f"/api/{user}/tasks", json={"title": "t", **body}, headers=headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def expect(stream: Stream, event: str) -> Event:
    got = await stream.next()
    assert got.event == event, got
    return got


def test_each_event_type_carries_what_get_returns(api: ApiServer, tokens: Tokens, user: str) -> None:
    h = tokens.headers(user)

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            task = await create(c, user, h, title="Buy milk", tags=["Home"], description="ünï\x01")
            created = await expect(stream, "task.created")
            got = (await c.get(f"/api/{user}/tasks/{task['id']}", headers=h)).json()
            assert created.data == {"type": "task.created", "task": got}

            r = await c.put(f"/api/{user}/tasks/{task['id']}", json={"priority": "high"}, headers=h)
            updated = await expect(stream, "task.updated")
            assert updated.data == {"type": "task.updated", "task": r.json()}

            r = await c.patch(f"/api/{user}/tasks/{task['id']}/complete", headers=h)
            toggled = await expect(stream, "task.updated")
            assert toggled.data["task"] == r.json()
            assert toggled.data["task"]["completed"] is True

            other = await create(c, user, h, title="second")
            await expect(stream, "task.created")
            r = await c.post(f"/api/{user}/tasks/complete-all", json={"completed": False}, headers=h)
            assert r.json() == {"updated": 1}
            # One task changed: it comes whole, not as a count.
            assert (await expect(stream, "task.updated")).data["task"]["id"] == task["id"]

            await c.post(f"/api/{user}/tasks/complete-all", json={"completed": True}, headers=h)
            bulk = await expect(stream, "tasks.changed")
            assert bulk.data == {"type": "tasks.changed", "action": "complete-all", "count": 2}
            r = await c.delete(f"/api/{user}/tasks", params={"completed": "true"}, headers=h)
            assert r.json() == {"deleted": 2}
            cleared = await expect(stream, "tasks.changed")
            assert cleared.data == {"type": "tasks.changed", "action": "clear-completed", "count": 2}

            last = await create(c, user, h, title="last")
            await expect(stream, "task.created")
            r = await c.delete(f"/api/{user}/tasks/{last['id']}", headers=h)
            assert r.status_code == 204
            deleted = await expect(stream, "task.deleted")
            assert deleted.data == {"type": "task.deleted", "id": last["id"], "version": 1}
            assert other["id"] != last["id"]

    run(api, scenario)


def test_ids_increase_and_one_tasks_events_come_in_version_order(
    api: ApiServer, tokens: Tokens, user: str
) -> None:
    h = tokens.headers(user)
    toggles = 30

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            task = await create(c, user, h)
            others = [await create(c, user, h, title=f"o{i}") for i in range(3)]
            path = f"/api/{user}/tasks/{task['id']}/complete"
            other_paths = [f"/api/{user}/tasks/{o['id']}/complete" for o in others]
            # Concurrent toggles of one task, interleaved with changes of others.
            calls = [c.patch(path, headers=h) for _ in range(toggles)]
            calls += [c.patch(p, headers=h) for p in other_paths for _ in range(5)]
            assert {r.status_code for r in await asyncio.gather(*calls)} == {200}
            events = [await stream.next() for _ in range(1 + 3 + toggles + 15)]
            ids = [e.id for e in events]
            assert None not in ids
            assert ids == sorted(ids), ids
            assert len(set(ids)) == len(ids), ids
            versions = [e.data["task"]["version"] for e in events if e.data["task"]["id"] == task["id"]]
            assert versions == list(range(1, toggles + 2))

    run(api, scenario)


def test_another_users_changes_never_arrive(api: ApiServer, tokens: Tokens, user: str) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    h, ho = tokens.headers(user), tokens.headers(other)

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream, open_stream(c, other, ho) as theirs:
            # The other user does everything, bulk actions included...
            t = await create(c, other, ho, title="theirs")
            await create(c, other, ho, title="theirs too")
            await c.patch(f"/api/{other}/tasks/{t['id']}", json={"title": "x"}, headers=ho)
            await c.post(f"/api/{other}/tasks/complete-all", json={"completed": True}, headers=ho)
            await c.delete(f"/api/{other}/tasks", params={"completed": "true"}, headers=ho)
            for _ in range(5):
                await theirs.next()  # ...and sees it all
            # ...while this user's stream stays silent: its next event is its own change.
            mine = await create(c, user, h, title="mine")
            got = await expect(stream, "task.created")
            assert got.data["task"]["id"] == mine["id"]
            assert stream.events.empty()

    run(api, scenario)


def test_the_guard_answers_before_any_stream(api: ApiServer, tokens: Tokens, user: str) -> None:
    with httpx.Client(base_url=api.url, timeout=10) as c:
        r = c.get(f"/api/{user}/events")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        r = c.get(f"/api/{user}/events", headers=tokens.headers("someone-else"))
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/problem+json"
        expired = tokens.jwks(user, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000)
        r = c.get(f"/api/{user}/events", headers={"Authorization": f"Bearer {expired}"})
        assert r.status_code == 401


def test_changes_by_sql_arrive_only_once_committed(
    api: ApiServer, tokens: Tokens, user: str, database_url: str
) -> None:
    h = tokens.headers(user)

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            task = await create(c, user, h, title="by api")
            await expect(stream, "task.created")
            conn = await asyncpg.connect(dsn(database_url))
            try:
                rolled_back = conn.transaction()
                await rolled_back.start()
                await conn.execute("UPDATE tasks SET title = 'never' WHERE id = $1", uuid.UUID(task["id"]))
                await rolled_back.rollback()
                await conn.execute(
                    "UPDATE tasks SET title = 'by hand', version = version + 1 WHERE id = $1",
                    uuid.UUID(task["id"]),
                )
                await conn.execute("DELETE FROM tasks WHERE id = $1", uuid.UUID(task["id"]))
            finally:
                await conn.close()
            updated = await expect(stream, "task.updated")
            assert (updated.data["task"]["title"], updated.data["task"]["version"]) == ("by hand", 2)
            assert (await expect(stream, "task.deleted")).data["version"] == 2

    run(api, scenario)


def test_the_largest_task_and_small_ones_arrive_whole_and_in_order(
    api: ApiServer, tokens: Tokens, database_url: str
) -> None:
    # A space and non-ASCII letters in the user id; and the largest task the API accepts, whose event
    # (each control character escaped to six bytes) is too big for one notification.
    user = f"Zoë {uuid.uuid4().hex[:8]}"
    h = tokens.headers(user)
    largest = {
        "title": "\x01" * 255,
        "description": "\x01" * 1000,
        "tags": ["\x01" * 29 + c for c in "abcdefghij"],
    }

    async def scenario(c: httpx.AsyncClient) -> None:
        # What PostgreSQL announces: the big task's ids only, the small ones' events whole.
        listen = await asyncpg.connect(dsn(database_url))
        payloads: asyncio.Queue[str] = asyncio.Queue()
        await listen.add_listener("task_events", lambda *args: payloads.put_nowait(args[3]))
        try:
            async with open_stream(c, user, h) as stream:
                big = await create(c, user, h, **largest)
                small = [await create(c, user, h, title=f"small {i}") for i in range(3)]
                created = [await expect(stream, "task.created") for _ in range(4)]
                assert [e.data["task"] for e in created] == [big, *small]
                mine: list[str] = []
                async with asyncio.timeout(10):
                    while len(mine) < 4:
                        if user in (payload := await payloads.get()):
                            mine.append(payload)
                assert [p.startswith(f"+{len(user)} {user}\n") for p in mine] == [False, True, True, True]
                await interleaved_and_by_hand(c, stream, big, small)
        finally:
            await listen.close()

    async def interleaved_and_by_hand(
        c: httpx.AsyncClient, stream: Stream, big: dict[str, Any], small: list[dict[str, Any]]
    ) -> None:
        # Big and small events committed close together, some in one listener batch.
        paths = [f"/api/{user}/tasks/{t['id']}/complete" for t in (big, small[0], big, small[1], big)]
        answers = {}
        for r in await asyncio.gather(*(c.patch(p, headers=h) for p in paths)):
            assert r.status_code == 200, r.text
            answers[(r.json()["id"], r.json()["version"])] = r.json()
        updates = [await expect(stream, "task.updated") for _ in paths]
        assert {(e.data["task"]["id"], e.data["task"]["version"]): e.data["task"] for e in updates} == answers

        # One statement by hand that changes three tasks: three events.
        conn = await asyncpg.connect(dsn(database_url))
        try:
            await conn.execute(
                "UPDATE tasks SET title = title || '!', version = version + 1 WHERE user_id = $1 "
                "AND title LIKE 'small %'",
                user,
            )
        finally:
            await conn.close()
        by_hand = [await expect(stream, "task.updated") for _ in small]
        assert sorted(e.data["task"]["title"] for e in by_hand) == ["small 0!", "small 1!", "small 2!"]

    run(api, scenario)


def test_a_notification_that_does_not_parse_gives_resync_and_events_flow_on(
    api: ApiServer, tokens: Tokens, user: str, database_url: str
) -> None:
    h = tokens.headers(user)
    # Too big for a notification of its own: its events are read from task_events.
    big = {"title": "big", "description": "\x01" * 1000, "tags": ["\x01" * 29 + c for c in "abcdefghij"]}

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            task = await create(c, user, h, **big)
            await expect(stream, "task.created")
            conn = await asyncpg.connect(dsn(database_url))
            try:
                # An event that does not decode, announced right behind one the listener must read
                # from the table (so it waits in the listener's queue): a resync for the user.
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE tasks SET version = version + 1 WHERE id = $1", uuid.UUID(task["id"])
                    )
                    await conn.execute(
                        "SELECT pg_notify('task_events', $1)", f"+{len(user)} {user}\n1 task.created not-json"
                    )
                got = [await stream.next() for _ in range(2)]
                assert sorted(e.event for e in got) == ["resync", "task.updated"], got
                # Notifications that do not parse: every stream refetches; an old-form one is ignored.
                for payload in ("+x", f"+{len(user)} {user}", f"+{len(user)} {user}\n1 task.created", "1 2"):
                    await conn.execute("SELECT pg_notify('task_events', $1)", payload)
            finally:
                await conn.close()
            after = await create(c, user, h, title="after")
            seen = []
            while (event := await stream.next()).event != "task.created":
                seen.append(event.event)
            assert event.data["task"] == after
            assert seen
            assert set(seen) == {"resync"}, seen

    run(api, scenario)


def test_last_event_id_gives_the_missed_events_or_resync(api: ApiServer, tokens: Tokens, user: str) -> None:
    h = tokens.headers(user)

    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, h) as stream:
            await create(c, user, h, title="seen")
            seen = await expect(stream, "task.created")
        assert seen.id is not None
        # Changes while no stream is open...
        missed = [await create(c, user, h, title=f"missed {i}") for i in range(3)]
        async with open_stream(c, user, {**h, "Last-Event-ID": str(seen.id)}) as stream:
            # ...come first on reconnect, then live events.
            replayed = [await expect(stream, "task.created") for _ in missed]
            assert [e.data["task"]["id"] for e in replayed] == [t["id"] for t in missed]
            assert len(replayed) == len(missed)
            assert [e for e in replayed if e.id is None or e.id <= seen.id] == []
            live = await create(c, user, h, title="live")
            assert (await expect(stream, "task.created")).data["task"]["id"] == live["id"]
        # An id this server never gave (or one whose events were purged): resync, never silence; and
        # then the live events, whatever the id presented.
        for bad in ("999999999999", "not-a-number"):
            async with open_stream(c, user, {**h, "Last-Event-ID": bad}) as stream:
                got = await expect(stream, "resync")
                assert got.data == {"type": "resync"}
                assert got.id is None
                after = await create(c, user, h, title=f"after {bad}")
                got = await expect(stream, "task.created")
                assert got.data["task"]["id"] == after["id"]

    run(api, scenario)


def test_at_most_five_streams_per_user(api: ApiServer, tokens: Tokens, user: str) -> None:
    h = tokens.headers(user)

    async def scenario(c: httpx.AsyncClient) -> None:
        async with contextlib.AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(open_stream(c, user, h)) for _ in range(5)]
            r = await c.get(f"/api/{user}/events", headers=h)
            assert r.status_code == 429
            assert r.headers["content-type"] == "application/problem+json"
            assert "at most 5" in r.json()["detail"]
            assert int(r.headers["Retry-After"]) > 0  # a client knows when to try again
            # Another user is not affected, and all five streams work.
            other = f"other-{uuid.uuid4().hex[:8]}"
            async with open_stream(c, other, tokens.headers(other)):
                pass
            await create(c, user, h)
            for s in streams:
                await expect(s, "task.created")
            # Closing one frees its place (once the server has seen the connection go).
            await streams[0].close()
            for _ in range(100):
                async with c.stream("GET", f"/api/{user}/events", headers=h) as r:
                    if r.status_code == 200:
                        break
                    assert r.status_code == 429
                await asyncio.sleep(0.05)
            assert r.status_code == 200

    run(api, scenario)


def test_the_limit_counts_the_streams_on_every_instance(
    api: ApiServer, api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    h = tokens.headers(user)
    with api_server(api_env) as instance_b:

        async def scenario(c: httpx.AsyncClient) -> None:
            async with contextlib.AsyncExitStack() as stack:
                for base in (api.url, api.url, api.url, instance_b.url, instance_b.url):
                    await stack.enter_async_context(open_stream(c, user, h, base))
                for base in (api.url, instance_b.url):
                    r = await c.get(f"{base}/api/{user}/events", headers=h)
                    assert r.status_code == 429
            # Closed on both: the places are free again.
            for _ in range(100):
                async with c.stream("GET", f"{instance_b.url}/api/{user}/events", headers=h) as r:
                    if r.status_code == 200:
                        break
                await asyncio.sleep(0.05)
            assert r.status_code == 200

        run(api, scenario)


def test_the_ping_interval_is_within_the_contracts_15_seconds() -> None:
    assert PING_EVERY_SECONDS <= 15


def test_an_idle_stream_gets_pings(api_env: dict[str, str], tokens: Tokens, user: str) -> None:
    """Served with a half-second interval (tests/probe_app.py), so no test waits out the real one."""
    env = {**api_env, "LITESTAR_APP": "tests.probe_app:create_app", "TEST_PING_EVERY_SECONDS": "0.5"}
    with api_server(env) as server:

        async def scenario(c: httpx.AsyncClient) -> None:
            lines: list[str] = []
            async with (
                asyncio.timeout(30),  # a bound on a hang, not a measurement
                c.stream("GET", f"/api/{user}/events", headers=tokens.headers(user)) as r,
            ):
                async for line in r.aiter_lines():
                    lines.append(line)
                    if lines.count(": ping") == 2:
                        break
            # No event, only comments (and the opening retry): EventSource sees nothing, a proxy sees bytes.
            assert not [line for line in lines if line.startswith(("data:", "event:", "id:"))], lines

        run(server, scenario)


def test_a_change_through_another_instance_arrives(
    api: ApiServer, api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    h = tokens.headers(user)
    with api_server(api_env) as instance_b:

        async def scenario(c: httpx.AsyncClient) -> None:
            async with open_stream(c, user, h) as stream:
                r = await c.post(f"{instance_b.url}/api/{user}/tasks", json={"title": "from B"}, headers=h)
                assert r.status_code == 201
                got = await expect(stream, "task.created")
                assert got.data["task"] == r.json()

        run(api, scenario)


def test_the_stream_ends_with_token_expired(api_env: dict[str, str], tokens: Tokens, user: str) -> None:
    with api_server({**api_env, "JWT_LEEWAY_SECONDS": "1"}) as server:
        now = int(time.time())
        token = tokens.jwks(user, exp=now + 3, iat=now)
        h = {"Authorization": f"Bearer {token}"}

        async def scenario(c: httpx.AsyncClient) -> None:
            async with open_stream(c, user, h) as stream:
                got = await stream.next(wait=15)
                assert got.event == "token-expired"
                assert got.data == {"type": "token-expired"}
                assert await stream.ended() == []
                assert time.time() >= now + 3 + 1

        run(server, scenario)


def test_eventsource_can_pass_the_token_in_the_query(api: ApiServer, tokens: Tokens, user: str) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        async with open_stream(c, user, {}, access_token=tokens.jwks(user)) as stream:
            await create(c, user, tokens.headers(user))
            await expect(stream, "task.created")

    run(api, scenario)


def test_openapi_describes_the_stream(anon: httpx.Client) -> None:
    spec = anon.get("/schema/openapi.json").json()
    operation = spec["paths"]["/api/{user_id}/events"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    for event in ("task.created", "task.updated", "task.deleted", "tasks.changed", "resync", "token-expired"):
        assert event in operation["description"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"Last-Event-ID", "access_token"} <= names
    assert "429" in operation["responses"]


def test_a_pooler_without_a_listen_url_refuses_to_start_with_one_line(api_env: dict[str, str]) -> None:
    env = {**api_env, "DATABASE_POOL_MODE": "transaction", "DATABASE_LISTEN_URL": ""}
    result = run_cli("database", "show-current-revision", env=env, check=False)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Tasks API configuration error: DATABASE_POOL_MODE is transaction"), last
    assert "DATABASE_LISTEN_URL" in last


@pytest.mark.parametrize(
    ("listen_url", "message"),
    [
        ("postgresql://u:p@ep-cool-123-pooler.eu-central-1.aws.neon.tech/db", "without -pooler"),
        ("mysql://u:p@db.example/tasks", "DATABASE_LISTEN_URL must start with postgresql://"),
    ],
)
def test_a_listen_url_must_be_a_direct_postgresql_connection(listen_url: str, message: str) -> None:
    env = {"JWT_SECRET": SECRET, "DATABASE_URL": "postgresql://u:p@db.example/tasks"}
    with pytest.raises(ConfigError, match=message):
        load_settings({**env, "DATABASE_LISTEN_URL": listen_url})
