"""A worker LISTENs only while it has an open stream (PostgreSQL runs a transaction in a listening
backend for every notification, so a write cost two while nobody watched), and a stream still misses
nothing around the LISTEN. Served by tests/probe_app.py, whose ``/probe/listening`` asks PostgreSQL,
on the worker's own listen connection, which channels it listens on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.sse import open_stream
from tests.support import ApiServer, Tokens, api_server
from tests.test_events import create, expect, run


@pytest.fixture(scope="module")
def probed(api_env: dict[str, str]) -> Iterator[ApiServer]:
    with api_server({**api_env, "LITESTAR_APP": "tests.probe_app:create_app"}) as server:
        yield server


async def channels(c: httpx.AsyncClient) -> list[str] | None:
    r = await c.get("/probe/listening")
    assert r.status_code == 200, r.text
    result: list[str] | None = r.json()["channels"]
    return result


async def until_not_listening(c: httpx.AsyncClient) -> None:
    """Returns once the worker's connection listens on nothing (it stops after its last stream ends)."""
    async with asyncio.timeout(15):
        while await channels(c) != []:  # noqa: ASYNC110 - the server's state, asked over HTTP
            await asyncio.sleep(0.05)


def test_a_worker_listens_only_while_a_stream_is_open(probed: ApiServer, tokens: Tokens, user: str) -> None:
    h = tokens.headers(user)

    async def scenario(c: httpx.AsyncClient) -> None:
        await until_not_listening(c)
        # Nobody watches: a write is announced to no listener.
        await create(c, user, h)
        assert await channels(c) == []
        for _ in range(2):
            async with open_stream(c, user, h) as stream:
                # Listening before the stream's first byte: a change made right away arrives.
                assert await channels(c) == ["task_events"]
                task = await create(c, user, h)
                assert (await expect(stream, "task.created")).data["task"] == task
            await until_not_listening(c)

    run(probed, scenario)


def test_a_stream_that_opens_misses_nothing_around_its_listen(
    probed: ApiServer, tokens: Tokens, user: str
) -> None:
    """A writer never stops while a client reconnects with Last-Event-ID again and again, each time
    to a worker that stopped listening: every id arrives, once, in order."""
    h = tokens.headers(user)

    async def scenario(c: httpx.AsyncClient) -> None:
        stop = asyncio.Event()
        written = 0

        async def writer() -> None:
            nonlocal written
            while not stop.is_set():
                await create(c, user, h)
                written += 1

        ids: list[int] = []
        writing = asyncio.create_task(writer())
        try:
            for _ in range(8):
                await until_not_listening(c)
                after = ids[-1] if ids else 0  # 0: from the user's first event
                async with open_stream(c, user, {**h, "Last-Event-ID": str(after)}) as stream:
                    for _ in range(3):
                        event = await expect(stream, "task.created")
                        assert event.id is not None
                        ids.append(event.id)
        finally:
            stop.set()
            await writing
        # The rest, after the last write, on one more stream.
        async with open_stream(c, user, {**h, "Last-Event-ID": str(ids[-1])}) as stream:
            while ids[-1] < written:
                event = await expect(stream, "task.created")
                assert event.id is not None
                ids.append(event.id)
        assert ids == list(range(1, written + 1))

    run(probed, scenario)
