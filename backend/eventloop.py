"""The event loop to serve with: ``uvicorn --loop backend.eventloop:ServingLoop`` (``scripts/serve``).

How a loop accepts connections decides how the API behaves under load; neither stock loop gets it right:

- uvloop (libuv >= 1.45) accepts one connection per loop turn. A turn under load takes ~10 ms, so a
  burst of 1,000 new connections waited up to ~8 s in the kernel's queue (wrk timeouts, p99 5-8 s).
- asyncio's loop accepts everything queued at once, so the worker that wakes first takes a whole
  burst. And with ``--workers N`` uvicorn binds the socket itself with protocol number 0, which makes
  asyncio skip TCP_NODELAY on accepted connections: Nagle's algorithm plus delayed ACKs then add
  ~40 ms to every response (2 workers served 1,200 req/s where 1 served 1,800).

This is asyncio's loop, accepting at most ``ACCEPT_BATCH`` connections per turn (a burst is in within
a few turns, and workers woken together share it), with TCP_NODELAY on every TCP connection.
The two overrides are asyncio internals, unchanged since Python 3.11; tests/test_eventloop.py checks both.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

ACCEPT_BATCH = 16


class ServingLoop(asyncio.SelectorEventLoop):
    """uvicorn's ``--loop`` takes the import string of a loop factory: this class."""

    def _accept_connection(
        self,
        protocol_factory: Any,
        sock: socket.socket,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *args: Any,
    ) -> None:
        # asyncio's own accept loop, only with a smaller batch than the listen backlog it would use.
        super()._accept_connection(  # type: ignore[misc]
            protocol_factory, sock, sslcontext, server, min(backlog, ACCEPT_BATCH), *args
        )

    def _make_socket_transport(self, sock: socket.socket, *args: Any, **kwargs: Any) -> asyncio.Transport:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super()._make_socket_transport(sock, *args, **kwargs)  # type: ignore[misc,no-any-return]
