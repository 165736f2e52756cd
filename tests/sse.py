"""A Server-Sent Events client for the tests: reads a stream in the background, parsed per the
WHATWG rules the browser's ``EventSource`` follows (``id``, ``event``, ``data`` lines, ``:`` comments)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    event: str
    data: Any
    id: int | None = None


@dataclass
class Stream:
    """One open ``GET /api/{user}/events``; ``events`` are parsed messages, ``comments`` the ``:`` lines."""

    response: httpx.Response
    events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    comments: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            async for line in self.response.aiter_lines():
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line == "":
                    if data:
                        event_id = fields.get("id")
                        self.events.put_nowait(
                            Event(
                                fields.get("event", "message"),
                                json.loads("\n".join(data)),
                                int(event_id) if event_id else None,
                            )
                        )
                    fields, data = {}, []
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        data.append(value)
                    else:
                        fields[name] = value
        except httpx.HTTPError:
            pass
        finally:
            self.events.put_nowait(None)  # the end of the stream

    async def next(self, wait: float = 10) -> Event:
        """The next event; fails when none comes within ``wait`` seconds or the stream ended."""
        async with asyncio.timeout(wait):
            event = await self.events.get()
        assert event is not None, "the stream ended"
        return event

    async def ended(self, wait: float = 10) -> list[Event]:
        """The events left until the server ends the stream (fails if it does not within ``wait`` seconds)."""
        rest = []
        async with asyncio.timeout(wait):
            while (event := await self.events.get()) is not None:
                rest.append(event)
        return rest

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.response.aclose()


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, user: str, headers: dict[str, str], base: str = "", **params: Any
) -> Any:
    """Open the stream (on the client's server, or on ``base``) and wait for its first bytes (the
    server's ``connected`` comment)."""
    request = client.build_request("GET", f"{base}/api/{user}/events", headers=headers, params=params or None)
    response = await client.send(request, stream=True)
    assert response.status_code == 200, (response.status_code, await response.aread())
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = Stream(response)
    stream.task = asyncio.create_task(stream._read())
    try:
        for _ in range(100):
            if "connected" in stream.comments:
                break
            await asyncio.sleep(0.02)
        assert "connected" in stream.comments
        yield stream
    finally:
        await stream.close()
