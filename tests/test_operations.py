"""Operations: request ids, JSON access logs, security headers, graceful shutdown, several workers."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx

from tests.support import ApiServer, Tokens, api_server, redis_server


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
    assert not any("uvicorn" in line and '"GET /api' in line for line in output.splitlines())


async def _burst(url: str, headers: dict[str, str], n: int) -> list[int | str]:
    async with httpx.AsyncClient(timeout=30) as c:

        async def one(i: int) -> int | str:
            try:
                response = await c.post(url, json={"title": f"in flight {i}"}, headers=headers)
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_graceful_shutdown_finishes_in_flight_requests(api_env: dict[str, str], tokens: Tokens) -> None:
    server = ApiServer(api_env).start()
    url = f"{server.url}/api/shutdown-user/tasks"

    async def scenario() -> list[int | str]:
        burst = asyncio.create_task(_burst(url, tokens.headers("shutdown-user"), 40))
        await asyncio.sleep(0.05)  # requests are in flight
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        return await burst

    try:
        results = asyncio.run(scenario())
    finally:
        output = server.stop()
    answered = [r for r in results if isinstance(r, int)]
    # Every request either completed (201) or was refused before it started (connection error);
    # none was cut off half-way with a 5xx.
    assert all(r == 201 for r in answered), results
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
        finally:
            output = server.stop()
    assert statuses == [200] * 5 + [429] * 3
    pids = {line["pid"] for line in log_lines(output) if line.get("logger") == "tasks.access"}
    assert len(pids) >= 1


def test_the_dev_server_serves_the_same_api(api_env: dict[str, str], tokens: Tokens) -> None:
    """scripts/dev serves with `litestar run`, not scripts/serve: the same app, the same guard."""
    with api_server(api_env, dev=True) as server:
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        mine = httpx.get(f"{server.url}/api/dev-user/tasks", headers=tokens.headers("dev-user"))
        theirs = httpx.get(f"{server.url}/api/other-user/tasks", headers=tokens.headers("dev-user"))
    assert (mine.status_code, theirs.status_code) == (200, 403)
