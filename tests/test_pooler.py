"""Through a real PgBouncer in transaction pooling mode: DATABASE_POOL_MODE=transaction is what makes it work.

asyncpg names its prepared statements per connection (``__asyncpg_stmt_1__``, ...). Behind a transaction
pooler every transaction may run on another server connection, where such a statement is missing or,
prepared by another client, already exists. ``scripts/test`` also runs the API suites through PgBouncer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.pgbouncer import PgBouncer
from tests.support import ApiServer, Tokens, api_server

CLIENTS = 30


@pytest.fixture(scope="module")
def bouncer(database_url: str) -> Iterator[PgBouncer]:
    # A small server pool, so concurrent clients really share server connections.
    with PgBouncer(database_url, pool_size=4) as bouncer:
        yield bouncer


def pooled_env(api_env: dict[str, str], bouncer: PgBouncer, mode: str) -> dict[str, str]:
    # Live updates LISTEN on the direct connection (DATABASE_URL before the pooler).
    listen = api_env.get("DATABASE_LISTEN_URL", api_env["DATABASE_URL"])
    return {
        **api_env,
        "DATABASE_URL": bouncer.url(),
        "DATABASE_POOL_MODE": mode,
        "DATABASE_LISTEN_URL": listen,
    }


async def _workload(api: ApiServer, tokens: Tokens) -> list[int]:
    """Concurrent creates, then concurrent lists, toggles and reads, each user on its own connection."""
    users = [f"pooler-{uuid.uuid4().hex[:10]}" for _ in range(CLIENTS)]
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=api.url, limits=limits, timeout=60) as c:

        async def create(u: str) -> httpx.Response:
            return await c.post(f"/api/{u}/tasks", json={"title": "pooled"}, headers=tokens.headers(u))

        created = await asyncio.gather(*(create(u) for u in users))
        statuses = [r.status_code for r in created]
        ids = {u: r.json()["id"] for u, r in zip(users, created, strict=True) if r.status_code == 201}
        requests = []
        for u, task_id in ids.items():
            h = tokens.headers(u)
            requests += [
                c.get(f"/api/{u}/tasks", headers=h),
                c.patch(f"/api/{u}/tasks/{task_id}/complete", headers=h),
                c.get(f"/api/{u}/tasks/{task_id}", headers=h),
                c.get(f"/api/{u}/tasks/stats", headers=h),
            ]
        statuses += [r.status_code for r in await asyncio.gather(*requests)]
    return statuses


def test_transaction_mode_api_works_through_pgbouncer(
    api_env: dict[str, str], bouncer: PgBouncer, tokens: Tokens
) -> None:
    with api_server(pooled_env(api_env, bouncer, "transaction")) as server:
        statuses = asyncio.run(_workload(server, tokens))
    log = server.output()
    assert statuses == [201] * CLIENTS + [200] * (4 * CLIENTS), log[-4000:]
    assert "prepared statement" not in log


def test_session_mode_api_breaks_through_pgbouncer(
    api_env: dict[str, str], bouncer: PgBouncer, tokens: Tokens
) -> None:
    """The control: the same API with asyncpg's named statements fails there, so the pooler is real."""
    with api_server(pooled_env(api_env, bouncer, "session"), expect_errors=True) as server:
        statuses = asyncio.run(_workload(server, tokens))
        log = server.output()
    assert 500 in statuses
    assert "prepared statement" in log, log[-4000:]
    assert "__asyncpg_stmt_" in log
