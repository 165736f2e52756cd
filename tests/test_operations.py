"""Operations: request ids, JSON access logs, security headers, graceful shutdown, several workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid

import asyncpg
import httpx

from tests.support import ApiServer, Tokens, api_server, redis_server


def access_pids(output: str) -> set[object]:
    return {line["pid"] for line in log_lines(output) if line.get("logger") == "tasks.access"}


async def _fresh_connections(url: str, headers: dict[str, str], n: int = 10) -> None:
    """``n`` requests at once, each on its own new connection (so the kernel spreads them over workers)."""

    async def one() -> None:
        async with httpx.AsyncClient(timeout=30) as c:
            await c.get(url, headers=headers)

    await asyncio.gather(*(one() for _ in range(n)))


def log_lines(output: str) -> list[dict[str, object]]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    echoed = client.get("/tasks", headers={"X-Request-ID": "trace-42.a"})
    assert echoed.headers["X-Request-ID"] == "trace-42.a"
    generated = client.get("/tasks")
    assert len(generated.headers["X-Request-ID"]) == 32
    hostile = client.get("/tasks", headers={"X-Request-ID": "x" * 300})
    assert hostile.headers["X-Request-ID"] != "x" * 300


def test_security_headers_on_api_docs_and_errors(client: httpx.Client, anon: httpx.Client) -> None:
    for response in (client.get("/tasks"), anon.get("/api/u/tasks"), anon.get("/no/such/page")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
    api = client.get("/tasks")
    assert api.headers["Cache-Control"] == "private, no-cache"
    assert "default-src 'none'" in api.headers["Content-Security-Policy"]
    # The docs page loads its scripts; an API-only CSP would break it.
    assert "Content-Security-Policy" not in anon.get("/schema").headers


def test_one_json_access_line_per_request_without_the_token(api_env: dict[str, str], tokens: Tokens) -> None:
    server = ApiServer(api_env).start()
    token = tokens.jwks("ops-user")
    try:
        created = httpx.post(
            f"{server.url}/api/ops-user/tasks",
            json={"title": "logged"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-1"},
        )
        httpx.get(
            f"{server.url}/api/ops-user/tasks/{created.json()['id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
        httpx.get(f"{server.url}/api/ops-user/tasks", headers={"Authorization": "Bearer nope"})
    finally:
        output = server.stop()
    assert token not in output
    access = [line for line in log_lines(output) if line.get("logger") == "tasks.access"]
    by_path = {(a["method"], a["path"], a["status"]): a for a in access}
    first = by_path[("POST", "/api/{user_id}/tasks", 201)]
    assert first["request_id"] == "req-1"
    assert first["user_id"] == "ops-user"
    assert isinstance(first["duration_ms"], float)
    assert ("GET", "/api/{user_id}/tasks/{task_id}", 200) in by_path  # the template, not the task id
    assert by_path[("GET", "/api/{user_id}/tasks", 401)]["user_id"] is None
    # Ours is the only access log: no other line (Granian's own access log) names the requests.
    others = [line for line in output.splitlines() if not line.startswith("{")]
    assert [line for line in others if "/api/ops-user" in line] == []


async def _wait_for_a_lock_waiter(conn: asyncpg.Connection) -> None:
    """Until some other backend of this database waits on a row lock (the API's request on ours)."""
    for _ in range(600):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the request never reached the database")


def test_graceful_shutdown_finishes_in_flight_requests(
    api_env: dict[str, str], database_url: str, tokens: Tokens
) -> None:
    """A request still working when SIGTERM arrives gets its answer, and its write is kept."""
    user = f"shutdown-{uuid.uuid4().hex[:8]}"
    headers = tokens.headers(user)
    server = ApiServer(api_env).start()
    assert server.process is not None
    task = httpx.post(f"{server.url}/api/{user}/tasks", json={"title": "held"}, headers=headers).json()
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def scenario() -> tuple[httpx.Response, int | None]:
        conn = await asyncpg.connect(dsn)
        try:
            # Hold the task's row so the toggle below is in flight, inside the server, when SIGTERM comes.
            held = conn.transaction()
            await held.start()
            await conn.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", uuid.UUID(task["id"]))
            async with httpx.AsyncClient(timeout=60) as c:
                toggle = asyncio.create_task(
                    c.patch(f"{server.url}/api/{user}/tasks/{task['id']}/complete", headers=headers)
                )
                await _wait_for_a_lock_waiter(conn)
                assert server.process is not None
                os.killpg(server.process.pid, signal.SIGTERM)
                await asyncio.sleep(1)
                still_running = server.process.poll()  # None: the server waits for the request
                await held.rollback()
                return await toggle, still_running
        finally:
            await conn.close()

    try:
        response, exit_code_while_in_flight = asyncio.run(scenario())
        exit_code = server.process.wait(60)
    finally:
        output = server.stop()
    assert exit_code_while_in_flight is None
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True
    assert exit_code == 0, output[-2000:]
    assert "unhandled error" not in output


def test_workers_share_rate_limits_through_redis(api_env: dict[str, str], tokens: Tokens) -> None:
    with redis_server() as redis_url:
        env = {**api_env, "RATE_LIMIT": "5/day", "REDIS_URL": redis_url}
        server = ApiServer(env, workers=2).start()
        try:
            deadline = time.monotonic() + 10
            statuses: list[int] = []
            while len(statuses) < 8 and time.monotonic() < deadline:
                # A new connection each time, so both workers take requests.
                statuses.append(
                    httpx.get(
                        f"{server.url}/api/workers-user/tasks", headers=tokens.headers("workers-user")
                    ).status_code
                )
            # Both workers counted against the same limit: make sure both served some of it.
            pids = access_pids(server.output())
            while len(pids) < 2 and time.monotonic() < deadline + 20:
                asyncio.run(
                    _fresh_connections(f"{server.url}/api/workers-user/tasks", tokens.headers("workers-user"))
                )
                pids = access_pids(server.output())
        finally:
            server.stop()
    assert statuses == [200] * 5 + [429] * 3
    assert len(pids) == 2, "one worker served every request"


def test_the_dev_server_serves_the_same_api(api_env: dict[str, str], tokens: Tokens) -> None:
    """scripts/dev serves with `litestar run`, not scripts/serve: the same app, the same guard."""
    with api_server(api_env, dev=True) as server:
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        mine = httpx.get(f"{server.url}/api/dev-user/tasks", headers=tokens.headers("dev-user"))
        theirs = httpx.get(f"{server.url}/api/other-user/tasks", headers=tokens.headers("dev-user"))
    assert (mine.status_code, theirs.status_code) == (200, 403)
