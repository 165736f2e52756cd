"""PostgreSQL out of connection slots (SQLSTATE 53300): a 503 with ``Retry-After``, never a 500.

Provoked for real: the API connects as a role of its own with ``CONNECTION LIMIT 2``. It warms one
pooled connection; the test takes the role's other slot itself; a table lock keeps the API's one
connection busy, so the next request must open a new connection, which PostgreSQL refuses ("too many
connections for role"). That is what instances times workers times pool size past ``max_connections``
look like to each of them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.support import Tokens, api_server, app_role, driver_dsn

ROLE_SLOTS = 2


@pytest.fixture
def limited_role(database_url: str) -> Iterator[tuple[str, str]]:
    """A login role allowed ``ROLE_SLOTS`` connections and the app's tables: (its URL, its name)."""
    with app_role(database_url, "slots", connection_limit=ROLE_SLOTS) as role:
        yield role


async def _wait_for_lock_wait(admin: asyncpg.Connection, role: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'", role
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the API's request never waited on the table lock")


def _assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 503
    assert response.headers["Retry-After"].isdigit()


def _assert_not_ready(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"status": "unavailable"}
    assert response.headers["Retry-After"].isdigit()


async def _scenario(api_url: str, role_url: str, role: str, admin_dsn: str, tokens: Tokens) -> None:
    user = f"user-{uuid.uuid4().hex[:12]}"
    async with httpx.AsyncClient(base_url=api_url, headers=tokens.headers(user), timeout=30) as client:
        tasks = f"/api/{user}/tasks"
        # Warm: the API now holds one pooled connection of the role's two.
        assert (await client.get(tasks)).status_code == 200
        hog = await asyncpg.connect(driver_dsn(role_url))  # the role's last slot
        admin = await asyncpg.connect(admin_dsn)
        try:
            lock = admin.transaction()
            await lock.start()
            await admin.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            blocked = asyncio.create_task(client.get(tasks))  # holds the API's pooled connection
            await _wait_for_lock_wait(admin, role)

            _assert_503(await client.get(tasks))
            _assert_503(await client.post(tasks, json={"title": "refused for lack of a connection"}))
            _assert_not_ready(await client.get("/health/ready"))

            await lock.rollback()
            assert (await blocked).status_code == 200
            # An idle pooled connection answers SELECT 1 again, but requests just found PostgreSQL
            # refusing connections: readiness says so rather than inviting more traffic.
            _assert_not_ready(await client.get("/health/ready"))
            assert (await client.get("/health")).status_code == 200
        finally:
            await hog.close()
            await admin.close()

        # A slot is free again: the same process serves, and readiness comes back.
        deadline = time.monotonic() + 15
        while (ready := await client.get("/health/ready")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            await asyncio.sleep(0.2)
        listed = await client.get(tasks)
        assert listed.status_code == 200
        assert listed.json() == []  # the refused create created nothing


def test_out_of_connection_slots_is_503_and_readiness_says_so(
    api_env: dict[str, str], database_url: str, limited_role: tuple[str, str], tokens: Tokens
) -> None:
    role_url, role = limited_role
    env = {
        **api_env,
        "DATABASE_URL": role_url,
        # The live-updates LISTEN connection goes elsewhere: the role's slots are the request pool's.
        "DATABASE_LISTEN_URL": database_url,
        "DATABASE_POOL_MODE": "session",
        "DATABASE_POOL_TIMEOUT": "2",
        "RATE_LIMIT": "0",
    }
    with api_server(env) as server:
        asyncio.run(_scenario(server.url, role_url, role, driver_dsn(database_url), tokens))
