"""Noticing that the server is exiting, while streams are still open.

uvicorn (``scripts/serve``, ``litestar run``) on SIGTERM/SIGINT stops accepting, then waits for every open
connection to finish before it runs the lifespan shutdown: an endless stream would hold the exit
forever. sse-starlette meets this by patching ``uvicorn.Server.handle_exit``; instead, at start-up (when
the server's own handlers are installed) we put a handler in front of them that tells the streams to
end and then calls the server's. Servers that run the lifespan shutdown first (Granian, Hypercorn) are
covered by ``LiveUpdates.stop`` as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_exit_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` on the running loop at SIGINT/SIGTERM, before the server's own handler.

    Returns a function that puts the previous handlers back. Outside the main thread (signals cannot be
    handled there) nothing is installed.
    """
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        handler = previous.get(sig)
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL and sig == signal.SIGINT:
            raise KeyboardInterrupt

    try:
        for sig in EXIT_SIGNALS:
            previous[sig] = signal.signal(sig, handle)
    except ValueError:  # not the main thread
        pass

    def restore() -> None:
        for sig, handler in previous.items():
            # Only if nobody replaced ours meanwhile (the server restores its own on exit).
            with contextlib.suppress(ValueError):
                if signal.getsignal(sig) is handle:
                    signal.signal(sig, handler)

    return restore
