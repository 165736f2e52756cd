"""When the worker is told to stop: the event a long-lived response (a live-updates stream) watches.

On SIGTERM/SIGINT Granian stops accepting and waits for in-flight responses, up to
``SERVER_SHUTDOWN_TIMEOUT``; a stream that never ends would hold the worker that long and then be
killed with it, skipping the app's shutdown hooks. Granian tells the app nothing (no ``http.disconnect``
for open responses, and the lifespan shutdown only starts once they are done), and neither does
uvicorn, so the worker's own signal is the hook: ``await shutting_down().wait()`` next to the stream's
source and end the response when it fires (the client's EventSource reconnects to a live worker).

The handler is chained in front of the one the server's event loop installed (asyncio's and uvloop's
``add_signal_handler`` keep a Python-level handler and a wake-up fd: the fd still wakes the loop, and the
previous handler is called as before), so the server's own graceful stop is unchanged.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}


def shutting_down() -> asyncio.Event:
    """The running loop's "this worker is stopping" event, set on the first SIGTERM or SIGINT.

    Call it from the serving loop (a handler, a dependency or an ``on_startup`` hook); the first call
    installs the signal handler, which Python allows from the main thread only (where servers run the
    loop). From any other thread the event is returned but never set.
    """
    loop = asyncio.get_running_loop()
    event = _events.get(loop)
    if event is None:
        event = _events[loop] = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                _chain(signum, loop, event)
    return event


def _chain(signum: int, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    previous: Any = signal.getsignal(signum)

    def handler(received: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(event.set)
        if callable(previous):
            previous(received, frame)
        elif previous == signal.SIG_DFL:
            # Nothing installed one: behave as before, end the process.
            signal.signal(received, signal.SIG_DFL)
            signal.raise_signal(received)

    signal.signal(signum, handler)
