"""A statement the database server itself cancels (its own ``statement_timeout``, which hosts often set
on the role or database) is a 503 with ``Retry-After`` and changes nothing: the database is too busy to
answer now, as with the API's own statement timeout. It used to be a 500."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.conftest import new_database
from tests.support import SECRET, UNHANDLED, Tokens, api_server, run_cli


def test_a_statement_the_server_cancels_is_a_503_and_changes_nothing(admin_url: str, tokens: Tokens) -> None:
    url = new_database(admin_url)
    env = {"DATABASE_URL": url, "JWT_SECRET": SECRET, "RATE_LIMIT": "0"}
    run_cli("database", "upgrade", "--no-prompt", env=env)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    user = "timeouts"
    headers = {"Authorization": f"Bearer {tokens.hs256(user)}"}
    with api_server(env, expect_errors=True) as api, httpx.Client(base_url=f"{api.url}/api/{user}") as c:
        task = c.post("/tasks", json={"title": "held"}, headers=headers).json()

        async def patch_while_locked() -> httpx.Response:
            admin = await asyncpg.connect(dsn)
            try:
                # New sessions of this database get a short server-side timeout: the pool's next
                # connections (opened after this) wait for the lock below and are cancelled by the server.
                name = await admin.fetchval("SELECT current_database()")
                await admin.execute(f"ALTER DATABASE \"{name}\" SET statement_timeout = '300ms'")
                holder = await asyncpg.connect(dsn)
                try:
                    async with holder.transaction():
                        await holder.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task["id"])
                        # Every pooled connection is replaced, so the request runs on a new session.
                        await admin.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                            "AND pid <> $1 AND backend_type = 'client backend' "
                            "AND application_name <> 'tasks-api events listener'",
                            holder.get_server_pid(),
                        )
                        answers = []
                        for _ in range(3):  # the first may meet a terminated connection (a 503 too)
                            answers.append(
                                await asyncio.to_thread(
                                    c.patch,
                                    f"/tasks/{task['id']}",
                                    json={"title": "changed"},
                                    headers=headers,
                                )
                            )
                        return answers[-1]
                finally:
                    await holder.close()
            finally:
                await admin.close()

        answer = asyncio.run(patch_while_locked())
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert int(answer.headers["Retry-After"]) > 0
        assert c.get(f"/tasks/{task['id']}", headers=headers).json()["title"] == "held"
        assert UNHANDLED not in api.output()
