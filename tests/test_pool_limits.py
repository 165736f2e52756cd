"""A worker never holds more PostgreSQL connections than its pool allows, whatever goes wrong.

The API connects as a role of its own (its live-updates listener elsewhere), so ``pg_stat_activity``
counts exactly the request pool's connections. While requests run, statements time out (a table lock
held past ``DATABASE_STATEMENT_TIMEOUT``) and the API's backends are killed (``pg_terminate_backend``);
a sampler counts the role's connections throughout. The count never exceeds pool size + overflow, and
afterwards the same process serves again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from tests.support import Tokens, api_server, app_role, driver_dsn

POOL_SIZE = 3
MAX_OVERFLOW = 2
LIMIT = POOL_SIZE + MAX_OVERFLOW
CONCURRENT = 16
ROUNDS = 6


@pytest.fixture
def api_role(database_url: str) -> Iterator[tuple[str, str]]:
    """A login role with the app's table rights and no connection limit: (its URL, its name)."""
    with app_role(database_url, "pool") as role:
        yield role


@dataclass
class Sampler:
    """Counts the role's connections until told to stop; ``peak`` is the most seen at once."""

    admin: asyncpg.Connection
    role: str
    peak: int = 0
    samples: list[int] = field(default_factory=list)
    running: bool = True

    async def count(self) -> int:
        n = await self.admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", self.role)
        return int(n)

    async def run(self) -> None:
        while self.running:
            n = await self.count()
            self.samples.append(n)
            self.peak = max(self.peak, n)
            await asyncio.sleep(0.02)


async def _burst(client: httpx.AsyncClient, path: str) -> list[int]:
    responses = await asyncio.gather(*(client.get(path) for _ in range(CONCURRENT)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, [r.text for r in responses if r.status_code not in (200, 503)]
    return statuses


async def _scenario(api_url: str, admin_dsn: str, role: str, tokens: Tokens) -> Sampler:
    user = f"user-{uuid.uuid4().hex[:12]}"
    tasks = f"/api/{user}/tasks"
    limits = httpx.Limits(max_connections=CONCURRENT * 2)
    async with httpx.AsyncClient(
        base_url=api_url, headers=tokens.headers(user), timeout=30, limits=limits
    ) as client:
        assert (await client.post(tasks, json={"title": "there"})).status_code == 201
        admin = await asyncpg.connect(admin_dsn)
        killer = await asyncpg.connect(admin_dsn)
        sampler = Sampler(admin, role)
        sampling = asyncio.create_task(sampler.run())
        try:
            assert 200 in await _burst(client, tasks)  # the pool is warm and busy
            for _ in range(ROUNDS):
                # Statement timeouts: every request waits on the lock past the statement timeout.
                async with killer.transaction():
                    await killer.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
                    assert 503 in await _burst(client, tasks)
                assert 200 in await _burst(client, tasks)
                # Killed backends, while requests run on some of them.
                running = asyncio.create_task(_burst(client, tasks))
                await killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
                )
                await running
            # Recovered: the same process serves, within its pool.
            for _ in range(3):
                assert set(await _burst(client, tasks)) == {200}
        finally:
            sampler.running = False
            await sampling
            settled = await sampler.count()
            await killer.close()
            await admin.close()
    assert settled <= LIMIT, f"{settled} connections held after the faults; the pool allows {LIMIT}"
    return sampler


def test_connections_stay_within_the_pool_under_timeouts_and_killed_backends(
    api_env: dict[str, str], database_url: str, api_role: tuple[str, str], tokens: Tokens
) -> None:
    role_url, role = api_role
    env = {
        **api_env,
        "DATABASE_URL": role_url,
        # The live-updates LISTEN connection goes elsewhere: the role's connections are the pool's.
        "DATABASE_LISTEN_URL": database_url,
        "DATABASE_POOL_MODE": "session",
        "DATABASE_POOL_SIZE": str(POOL_SIZE),
        "DATABASE_MAX_OVERFLOW": str(MAX_OVERFLOW),
        "DATABASE_POOL_TIMEOUT": "2",
        "DATABASE_STATEMENT_TIMEOUT": "0.5",
        "RATE_LIMIT": "0",
    }
    with api_server(env) as server:
        sampler = asyncio.run(_scenario(server.url, driver_dsn(database_url), role, tokens))
    assert sampler.peak <= LIMIT, (
        f"the worker held up to {sampler.peak} connections; its pool allows {LIMIT}: {sampler.samples}"
    )
