"""The API as production builds it, plus what only a test reads, for the real serve command to serve
(``LITESTAR_APP=tests.probe_app:create_app``):

- ``GET /probe/gc``: the serving worker's garbage-collector threshold and frozen-object count (the app
  tunes the collector process-wide at start-up);
- ``TEST_PING_EVERY_SECONDS``: a shorter live-updates ping interval, so a test sees pings without
  waiting out the production one.
"""

from __future__ import annotations

import gc
import os

from litestar import Litestar, get

import backend.events.stream
from backend.app import create_app as create_api


@get("/probe/gc", sync_to_thread=False)
def gc_state() -> dict[str, object]:
    return {"threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}


def create_app() -> Litestar:
    if ping := os.environ.get("TEST_PING_EVERY_SECONDS"):
        # Read by each stream on every wait (backend.events.stream.messages).
        backend.events.stream.PING_EVERY_SECONDS = float(ping)
    app = create_api()
    app.register(gc_state)
    return app
