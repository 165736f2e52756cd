"""Safe retries: the same Idempotency-Key gets the first answer again, and the change happens once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import ApiServer, Tokens

KEY = "Idempotency-Key"


def _key() -> str:
    return str(uuid.uuid4())


def _post(client: httpx.Client, path: str, raw: bytes, key: str) -> httpx.Response:
    return client.post(path, content=raw, headers={KEY: key, "Content-Type": "application/json"})


def test_a_retried_create_gets_the_first_answer_byte_for_byte(client: httpx.Client) -> None:
    key = _key()
    first = _post(
        client,
        "/tasks",
        b'{"title": "Buy milk", "tags": ["Home"], "due_at": "2026-12-24T18:00:00+01:00"}',
        key,
    )
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    # The same JSON, keys in another order and spaced differently: the same request.
    again = _post(
        client, "/tasks", b'{"due_at":"2026-12-24T18:00:00+01:00","tags":["Home"],"title":"Buy milk"}', key
    )
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"] == '"1"'
    tasks = client.get("/tasks").json()
    assert [t["id"] for t in tasks] == [first.json()["id"]]
    # What was answered is what is stored.
    assert (
        client.get(first.headers["Location"].split("/tasks", 1)[1].join(["/tasks", ""])).json()
        == first.json()
    )
    assert tasks[0]["version"] == 1


def test_the_same_key_with_another_body_is_422_and_changes_nothing(client: httpx.Client) -> None:
    key = _key()
    assert _post(client, "/tasks", b'{"title": "one"}', key).status_code == 201
    other = _post(client, "/tasks", b'{"title": "two"}', key)
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert KEY in other.json()["detail"]
    # Used on another route, it is another request too.
    assert _post(client, "/tasks/complete-all", b'{"completed": true}', key).status_code == 422
    assert [t["title"] for t in client.get("/tasks").json()] == ["one"]
    assert client.get("/tasks").json()[0]["completed"] is False


def test_keys_belong_to_their_user(client: httpx.Client, api: ApiServer, tokens: Tokens, user: str) -> None:
    key = _key()
    mine = _post(client, "/tasks", b'{"title": "mine"}', key)
    other = f"{user}-b"
    with httpx.Client(base_url=f"{api.url}/api/{other}", headers=tokens.headers(other)) as theirs:
        response = _post(theirs, "/tasks", b'{"title": "mine"}', key)
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers
        assert response.json()["id"] != mine.json()["id"]
        assert len(theirs.get("/tasks").json()) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "ключ", "tab\there", "caf\u00e9"])
def test_a_malformed_key_is_400_naming_the_header(client: httpx.Client, key: str) -> None:
    response = client.post(
        "/tasks",
        content=b'{"title": "x"}',
        headers=[(b"content-type", b"application/json"), (KEY.encode(), key.encode())],
    )
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == [KEY]
    assert client.get("/tasks").json() == []


def test_a_retried_complete_all_replays_its_count_and_changes_nothing_more(client: httpx.Client) -> None:
    ids = [client.post("/tasks", json={"title": f"t{i}"}).json()["id"] for i in range(3)]
    key = _key()
    first = _post(client, "/tasks/complete-all", b'{"completed": true}', key)
    assert (first.status_code, first.json()) == (200, {"updated": 3})
    reopened = client.patch(f"/tasks/{ids[0]}/complete").json()
    assert reopened["completed"] is False
    again = _post(client, "/tasks/complete-all", b'{ "completed" : true }', key)
    assert (again.status_code, again.content) == (200, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    # Not run again: the reopened task stays open, its version untouched.
    assert client.get(f"/tasks/{ids[0]}").json() == reopened


def test_sixty_simultaneous_creates_with_one_key_make_one_task(
    client: httpx.Client, api: ApiServer, tokens: Tokens, user: str
) -> None:
    key = _key()

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(
            headers={**tokens.headers(user), KEY: key}, limits=limits, timeout=60
        ) as c:
            url = f"{api.url}/api/{user}/tasks"
            return await asyncio.gather(*(c.post(url, json={"title": "once"}) for _ in range(60)))

    responses = asyncio.run(run())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    assert statuses.count(201) >= 1
    created = {r.content for r in responses if r.status_code == 201}
    assert len(created) == 1  # the original and every replay: the same bytes
    for r in responses:
        if r.status_code == 409:
            assert r.headers["Retry-After"]
            assert r.headers["content-type"] == "application/problem+json"
    assert len(client.get("/tasks").json()) == 1


async def _sql(database_url: str, *statements: tuple[str, list[Any]]) -> None:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for sql, args in statements:
            await conn.execute(sql, *args)
    finally:
        await conn.close()


def test_a_key_in_flight_is_409_with_retry_after(database_url: str, client: httpx.Client, user: str) -> None:
    key = _key()

    async def run() -> tuple[httpx.Response, httpx.Response]:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            # Hold the key's lock as a first request still running would.
            tx = conn.transaction()
            await tx.start()
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"idempotency\x1f{user}\x1f{key}"
            )
            busy = await asyncio.to_thread(_post, client, "/tasks", b'{"title": "x"}', key)
            await tx.rollback()
            done = await asyncio.to_thread(_post, client, "/tasks", b'{"title": "x"}', key)
            return busy, done
        finally:
            await conn.close()

    busy, done = asyncio.run(run())
    assert busy.status_code == 409
    assert busy.headers["Retry-After"] == "1"
    assert busy.headers["content-type"] == "application/problem+json"
    assert done.status_code == 201
    assert len(client.get("/tasks").json()) == 1


def test_expired_keys_are_purged_and_free_again(database_url: str, client: httpx.Client, user: str) -> None:
    key = _key()
    assert _post(client, "/tasks", b'{"title": "long ago"}', key).status_code == 201
    strangers = [f"gone-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    asyncio.run(
        _sql(
            database_url,
            (
                "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE user_id = $1",
                [user],
            ),
            *(
                (
                    "INSERT INTO idempotency_keys VALUES "
                    "($1, 'k', 'f', 201, '{}', NULL, NULL, now() - interval '1 day')",
                    [s],
                )
                for s in strangers
            ),
        )
    )
    # Past its day, the key names nothing: a new request with it is processed, even with another body.
    fresh = _post(client, "/tasks", b'{"title": "today"}', key)
    assert fresh.status_code == 201
    assert "Idempotent-Replayed" not in fresh.headers
    assert len(client.get("/tasks").json()) == 2

    async def left() -> int:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM idempotency_keys WHERE user_id = ANY($1)", strangers
                )
            )
        finally:
            await conn.close()

    # Other users' expired keys went with that request: nobody needs to come back for them.
    assert asyncio.run(left()) == 0


def test_without_a_key_a_repeated_create_creates_again(client: httpx.Client) -> None:
    for _ in range(2):
        assert client.post("/tasks", json={"title": "twice"}).status_code == 201
    assert len(client.get("/tasks").json()) == 2
