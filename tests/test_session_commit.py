"""The request's session: committed when the answer is a success, and free when nothing used it.

On a cluster of its own, logging every statement (``log_statement = all``), so the tests read what the
server really received.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from backend.devdb import asyncpg_url, start_cluster
from tests.support import SECRET, ApiServer, Tokens, api_server, create_database, run_cli, with_database


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A migrated database on a private cluster that logs every statement, and that log."""
    server = start_cluster(Path(tmp_path_factory.mktemp("pg-logged")) / "data", keep=False)
    try:
        admin = asyncpg_url(server)
        asyncio.run(create_database(admin, "commits"))
        url = with_database(admin, "commits")
        run_cli("database", "upgrade", "--no-prompt", env={"DATABASE_URL": url, "JWT_SECRET": SECRET})

        async def log_everything() -> str:
            conn = await asyncpg.connect(_plain(admin))
            try:
                await conn.execute("ALTER SYSTEM SET log_statement = 'all'")
                await conn.execute("SELECT pg_reload_conf()")
                return str(await conn.fetchval("SELECT current_setting('data_directory')"))
            finally:
                await conn.close()

        yield url, Path(asyncio.run(log_everything())) / "log"
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def logged_api(logged: tuple[str, Path], api_env: dict[str, str]) -> Iterator[ApiServer]:
    env = {**api_env, "DATABASE_URL": logged[0], "LITESTAR_APP": "tests.aa_write_app:create_app"}
    env.pop("DATABASE_LISTEN_URL", None)
    env.pop("DATABASE_POOL_MODE", None)
    with api_server(env) as server:
        yield server


def _statements_during(log: Path, action: object) -> list[str]:
    """The statements the server logged while ``action()`` ran (it returns once they are answered)."""
    start = log.stat().st_size
    assert callable(action)
    action()
    with log.open(encoding="utf-8", errors="replace") as f:
        f.seek(start)
        return [
            line.split("LOG:", 1)[1].strip()
            for line in f
            if "LOG:  statement:" in line or "LOG:  execute" in line
        ]


def test_a_write_through_advanced_alchemys_service_is_committed(
    logged: tuple[str, Path], logged_api: ApiServer
) -> None:
    key = str(uuid.uuid4())
    response = httpx.post(f"{logged_api.url}/test/aa-create/someone/{key}", timeout=30)
    assert response.status_code == 201, response.text

    async def stored() -> int:
        conn = await asyncpg.connect(_plain(logged[0]))
        try:
            return int(await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key))
        finally:
            await conn.close()

    assert asyncio.run(stored()) == 1


def test_a_task_request_sends_its_one_statement_and_no_transaction(
    logged: tuple[str, Path], logged_api: ApiServer, tokens: Tokens
) -> None:
    user = f"commit-{uuid.uuid4().hex[:8]}"
    base = f"{logged_api.url}/api/{user}/tasks"
    with httpx.Client(headers=tokens.headers(user), timeout=30) as c:
        c.get(base)  # the first request of a worker prepares more than one statement
        created: list[httpx.Response] = []
        sent = _statements_during(logged[1], lambda: created.append(c.post(base, json={"title": "one"})))
        assert created[0].status_code == 201
        assert len(sent) == 1, sent
        assert sent[0].startswith("execute")
        assert "INSERT INTO tasks" in sent[0]
        fetched = _statements_during(logged[1], lambda: c.get(f"{base}/{created[0].json()['id']}"))
        assert len(fetched) == 1, fetched
        assert not any(s.split(":", 1)[-1].strip().upper() in ("BEGIN", "COMMIT") for s in sent + fetched)


def _control(statement: str) -> str:
    """BEGIN, COMMIT or ROLLBACK for a transaction-control statement (``BEGIN ISOLATION LEVEL ...`` too)."""
    words = statement.split(":", 1)[-1].strip(" ;").upper().split()
    return words[0] if words else ""


def _transaction_control(sent: list[str]) -> list[str]:
    return [s for s in sent if _control(s) in ("BEGIN", "COMMIT", "ROLLBACK")]


def _get_logged(log: Path, c: httpx.Client, path: str) -> tuple[httpx.Response, list[str]]:
    answers: list[httpx.Response] = []
    sent = _statements_during(log, lambda: answers.append(c.get(path)))
    return answers[0], sent


def test_reading_lists_through_advanced_alchemy_sends_the_select_alone(
    logged: tuple[str, Path], logged_api: ApiServer, tokens: Tokens
) -> None:
    user = f"lists-{uuid.uuid4().hex[:8]}"
    base = f"{logged_api.url}/api/{user}/lists"
    with httpx.Client(headers=tokens.headers(user), timeout=30) as c:
        c.post(base, json={"name": "first"})  # the first request of a worker prepares more than one statement
        created: list[httpx.Response] = []
        sent = _statements_during(logged[1], lambda: created.append(c.post(base, json={"name": "groceries"})))
        made = created[0]
        assert made.status_code == 201, made.text
        # One transaction: the quota count and the INSERT, whose RETURNING brings the position (no
        # refresh after the commit).
        assert [_control(s) for s in _transaction_control(sent)] == ["BEGIN", "COMMIT"], sent
        assert made.json()["position"]
        url = f"{base}/{made.json()['id']}"
        c.get(base)  # the first request of a worker prepares more than one statement
        for path in (base, url):
            answer, sent = _get_logged(logged[1], c, path)
            assert answer.status_code == 200, answer.text
            # AA's get_many / get_one_or_none, without the BEGIN before and the ROLLBACK after.
            assert _transaction_control(sent) == [], sent
            assert len(sent) == 1, sent
            assert "SELECT lists.id" in sent[0], sent
        # A write on the same worker's connections is a transaction again: its locking read and its
        # update between one BEGIN and one COMMIT.
        renamed: list[httpx.Response] = []
        sent = _statements_during(logged[1], lambda: renamed.append(c.patch(url, json={"name": "food"})))
        assert renamed[0].status_code == 200, renamed[0].text
        assert [_control(s) for s in _transaction_control(sent)] == ["BEGIN", "COMMIT"], sent
        assert "SELECT lists.id" in sent[1], sent
        assert any("UPDATE lists SET name" in s for s in sent), sent
        assert renamed[0].json()["version"] == 2
        assert c.get(url).json()["name"] == "food"
