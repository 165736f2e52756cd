"""Noticing that the worker is told to stop, while long-lived responses (live-update streams) are open.

On SIGTERM/SIGINT Granian stops accepting and waits for in-flight responses, up to
``SERVER_SHUTDOWN_TIMEOUT``; it tells the app nothing (no ``http.disconnect`` for open responses, and
the lifespan shutdown starts only once they are done). A stream that never ends would hold its worker
that long and then be killed with it, skipping the app's shutdown hooks. So the worker's own signal is
the hook: ``on_exit_signal(callback)``, called from the serving loop (an ``on_startup`` hook), runs
``callback`` on that loop when the signal comes, and the callback ends the streams (EventSource
reconnects, to a worker that is still up).

Our handler is chained in front of the one already installed (asyncio's and uvloop's
``add_signal_handler`` keep a Python-level handler and a wake-up fd: the fd still wakes the loop, and the
previous handler is called as before), so the server's own graceful stop is unchanged.
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
    """Run ``callback`` on the running loop at SIGINT/SIGTERM, then the handler that was there before.

    Returns a function that puts the previous handlers back. Outside the main thread (Python handles
    signals there only) nothing is installed and ``callback`` never runs.
    """
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        handler = previous.get(sig)
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL:
            # Nobody else handled it: end the process, as the signal would have without us.
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

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
