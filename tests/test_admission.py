"""A worker lets in as many API requests at once as its pool has connections: the others wait at the door
(first come, first served, up to the pool timeout); an event stream gives its place back once it has
started, is never refused, and health checks and CORS preflights never wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import asyncpg
import httpx

from tests.sse import open_stream
from tests.support import Tokens, api_server, driver_dsn

_WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)
ORIGIN = "http://localhost:3000"
# One connection, one place: a request inside holds the door for everyone else.
ONE_PLACE = {"DATABASE_POOL_SIZE": "1", "DATABASE_MAX_OVERFLOW": "0", "DATABASE_POOL_TIMEOUT": "2"}


def test_open_event_streams_leave_the_places_to_requests(
    api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    async def scenario(url: str) -> None:
        headers = tokens.headers(user)
        async with httpx.AsyncClient(base_url=url, timeout=30) as c, AsyncExitStack() as streams:
            for _ in range(3):
                await streams.enter_async_context(open_stream(c, user, headers))
            started = time.monotonic()
            created = await c.post(
                f"/api/{user}/tasks", json={"title": "while streams are open"}, headers=headers
            )
            assert created.status_code == 201, created.text
            # Served at once, not after the pool timeout.
            assert time.monotonic() - started < 2

    with api_server({**api_env, **ONE_PLACE}) as server:
        asyncio.run(scenario(server.url))


def while_one_place_is_taken(
    api_env: dict[str, str],
    tokens: Tokens,
    user: str,
    database_url: str,
    during: Callable[[httpx.AsyncClient], Awaitable[None]],
) -> None:
    """On a server with one place, run ``during`` while that place is taken by ``user``'s create, which
    waits for its owner's lock, held here. Then the create completes and the place is free again."""
    other = f"{user}-other"

    async def scenario(url: str) -> None:
        holder = await asyncpg.connect(driver_dsn(database_url))
        # Outside the holder's transaction, which would see one snapshot of pg_stat_activity.
        watcher = await asyncpg.connect(driver_dsn(database_url))
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            try:
                async with holder.transaction():
                    await holder.execute("SELECT owner_locked($1)", user)
                    inside = asyncio.ensure_future(
                        c.post(f"/api/{user}/tasks", json={"title": "inside"}, headers=tokens.headers(user))
                    )
                    while not await watcher.fetchval(_WAITING):
                        assert not inside.done(), (await inside).text
                        await asyncio.sleep(0.02)
                    await during(c)
            finally:
                await holder.close()
                await watcher.close()
            assert (await inside).status_code == 201
            assert (await c.get(f"/api/{other}/tasks", headers=tokens.headers(other))).status_code == 200

    with api_server({**api_env, **ONE_PLACE, "CORS_ALLOW_ORIGINS": ORIGIN}) as server:
        asyncio.run(scenario(server.url))


def test_requests_past_the_places_wait_their_turn_then_get_503_after_the_timeout(
    api_env: dict[str, str], tokens: Tokens, user: str, database_url: str
) -> None:
    other = f"{user}-other"

    async def during(c: httpx.AsyncClient) -> None:
        refused = await c.get(f"/api/{other}/tasks", headers=tokens.headers(other))
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"] == "application/problem+json"

    while_one_place_is_taken(api_env, tokens, user, database_url, during)


def test_a_stream_past_the_timeout_still_opens_and_health_checks_and_preflights_never_wait(
    api_env: dict[str, str], tokens: Tokens, user: str, database_url: str
) -> None:
    other = f"{user}-other"

    async def during(c: httpx.AsyncClient) -> None:
        started = time.monotonic()
        assert (await c.get("/health")).status_code == 200
        preflight = await c.options(
            f"/api/{other}/tasks", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 204, preflight.text
        # Not after the door's timeout: health checks and preflights never touch the database.
        assert time.monotonic() - started < 2
        # A 503 would make EventSource give up for good: the stream waits its turn, then opens.
        async with open_stream(c, other, tokens.headers(other)):
            pass

    while_one_place_is_taken(api_env, tokens, user, database_url, during)


def test_many_requests_on_few_places_are_all_served(
    api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    async def scenario(url: str) -> list[int]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(
            base_url=url, timeout=60, limits=limits, headers=tokens.headers(user)
        ) as c:
            calls = [c.post(f"/api/{user}/tasks", json={"title": f"t{i}"}) for i in range(60)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    env = {**api_env, "DATABASE_POOL_SIZE": "2", "DATABASE_MAX_OVERFLOW": "0", "DATABASE_POOL_TIMEOUT": "30"}
    with api_server(env) as server:
        assert asyncio.run(scenario(server.url)) == [201] * 60
