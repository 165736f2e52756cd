"""A tiny app for tests/test_serving.py, served by the production command (``scripts/serve``).

A stream on its own, without the API's database: ``/stream`` ends when the worker is told to stop
(``backend.events.signals.on_exit_signal``, as the live-updates hub does), ``/stream-forever`` ignores it
(the control); the shutdown hook prints a line, which is only printed when the worker stopped cleanly (a
killed worker runs no hooks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.response import Stream
from litestar_granian import GranianPlugin

from backend.events.signals import on_exit_signal

HOOKS_RAN = "serving-app: shutdown hooks ran"


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


async def _ticks(stop: asyncio.Event | None) -> AsyncIterator[bytes]:
    n = 0
    while stop is None or not stop.is_set():
        yield f"data: {n}\n\n".encode()
        n += 1
        if stop is None:
            await asyncio.sleep(0.2)
        else:
            # Sleep until the next tick or until shutdown, whichever comes first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    yield b"event: bye\ndata: shutting down\n\n"


@get("/stream")
async def stream(state: State) -> Stream:
    return Stream(_ticks(state.stopping), media_type="text/event-stream")


@get("/stream-forever")
async def stream_forever() -> Stream:
    return Stream(_ticks(None), media_type="text/event-stream")


async def _watch_exit_signal(app: Litestar) -> None:
    app.state.stopping = asyncio.Event()
    on_exit_signal(app.state.stopping.set)


def _hooks_ran() -> None:
    print(HOOKS_RAN, flush=True)


def create_app() -> Litestar:
    # GranianPlugin: scripts/serve's flags are those of litestar-granian's `run` (the API's own CLI
    # plugin, backend.cli.TasksCLIPlugin, is one).
    return Litestar(
        [health, stream, stream_forever],
        on_startup=[_watch_exit_signal],
        on_shutdown=[_hooks_ran],
        plugins=[GranianPlugin()],
    )
