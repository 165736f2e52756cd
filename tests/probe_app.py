"""The API as production builds it, plus what only a test reads, for the real serve command to serve
(``LITESTAR_APP=tests.probe_app:create_app``):

- ``GET /probe/gc``: the serving worker's garbage-collector threshold and frozen-object count (the app
  tunes the collector process-wide at start-up);
- ``GET /probe/listening``: the channels the worker's live-updates connection listens on, as PostgreSQL
  reports them (``{"channels": null}`` without a connection);
- ``TEST_PING_EVERY_SECONDS``: a shorter live-updates ping interval, so a test sees pings without
  waiting out the production one.
"""

from __future__ import annotations

import gc
import os

from litestar import Litestar, get

import backend.events.stream
from backend.app import create_app as create_api
from backend.events import LiveUpdates


@get("/probe/gc", sync_to_thread=False)
def gc_state() -> dict[str, object]:
    return {"threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}


def create_app() -> Litestar:
    if ping := os.environ.get("TEST_PING_EVERY_SECONDS"):
        # Read by each stream on every wait (backend.events.stream.messages).
        backend.events.stream.PING_EVERY_SECONDS = float(ping)
    app = create_api()
    app.register(gc_state)
    # The app's LiveUpdates, found through the start-up hook it registered.
    owners = [getattr(hook, "__self__", None) for hook in app.on_startup]
    (live,) = [owner for owner in owners if isinstance(owner, LiveUpdates)]

    @get("/probe/listening")
    async def listening() -> dict[str, object]:
        return {"channels": await live.listener.channels()}

    app.register(listening)
    return app
